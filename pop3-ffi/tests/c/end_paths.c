/*
 * Every way a session ends produces POP3_EVENT_CLOSED exactly once, as the
 * last event, and the commands that can no longer be answered complete
 * before it. Driven by tests/c_tests.rs (built with AddressSanitizer);
 * prints one line per case and exits non-zero on the first failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3.h"

static int failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            failures++;                                                       \
        }                                                                     \
    } while (0)

struct tally {
    int closed;           /* POP3_EVENT_CLOSED seen */
    pop3_result closed_result;
    int after_closed;     /* events seen after CLOSED (must stay 0) */
    int start_tls;
    int failed, cancelled;
    pop3_handle failed_handle, cancelled_handle;
    pop3_result cancelled_result;
};

static pop3_client *new_client(int encrypted)
{
    pop3_config *config = NULL;
    pop3_client *client = NULL;
    if (pop3_config_new(&config) != POP3_OK)
        abort();
    pop3_config_set_encrypted(config, encrypted);
    pop3_config_set_allow_plaintext_credentials(config, 1);
    if (pop3_client_new(config, &client) != POP3_OK)
        abort();
    pop3_config_free(config);
    return client;
}

/* Everything the client wants written, reported written. */
static void drain_output(pop3_client *c)
{
    const uint8_t *out;
    size_t len;
    while (pop3_client_pending_output(c, &out, &len) == POP3_OK)
        if (pop3_client_output_written(c, len) != POP3_OK)
            abort();
}

static void feed(pop3_client *c, const char *bytes)
{
    pop3_result r = pop3_client_receive(c, (const uint8_t *)bytes, strlen(bytes));
    CHECK(r == POP3_OK, "receive: %s", pop3_result_message(r));
}

/* Handles events until none is ready (or the session is over), then writes. */
static void pump(pop3_client *c, struct tally *t)
{
    pop3_event ev;
    pop3_result r;
    drain_output(c);
    while ((r = pop3_client_next_event(c, &ev)) == POP3_OK) {
        if (t->closed)
            t->after_closed++;
        switch (ev.kind) {
        case POP3_EVENT_CLOSED:
            t->closed++;
            t->closed_result = ev.result;
            break;
        case POP3_EVENT_START_TLS:
            t->start_tls++;
            break;
        case POP3_EVENT_FAILED:
            t->failed++;
            t->failed_handle = ev.handle;
            break;
        case POP3_EVENT_CANCELLED:
            t->cancelled++;
            t->cancelled_handle = ev.handle;
            t->cancelled_result = ev.result;
            break;
        default:
            break;
        }
        drain_output(c);
    }
    CHECK(r == POP3_DONE || r == POP3_ERR_CLOSED, "next_event: %s", pop3_result_message(r));
    CHECK(r != POP3_ERR_CLOSED || t->closed == 1, "ERR_CLOSED without one CLOSED");
}

/* After the end: exactly one CLOSED, nothing after it, and every later
 * next_event says so. */
static void expect_closed_once(pop3_client *c, struct tally *t, pop3_result result,
                               const char *name)
{
    pop3_event ev;
    int i;
    pump(c, t);
    CHECK(t->closed == 1, "%s: %d CLOSED events", name, t->closed);
    CHECK(t->after_closed == 0, "%s: %d events after CLOSED", name, t->after_closed);
    CHECK(t->closed_result == result, "%s: CLOSED with %s, not %s", name,
          pop3_result_message(t->closed_result), pop3_result_message(result));
    for (i = 0; i < 3; i++)
        CHECK(pop3_client_next_event(c, &ev) == POP3_ERR_CLOSED, "%s: an event after the end",
              name);
    printf("ok: %s\n", name);
}

/* Greeted, CAPA answered with STLS, STLS accepted: the client now waits for
 * the handshake, with a login queued behind it. */
static pop3_client *upgrade_pending(struct tally *t, pop3_handle *stls, pop3_handle *login)
{
    pop3_client *c = new_client(0);
    CHECK(pop3_client_start_tls(c, stls) == POP3_OK, "start_tls");
    CHECK(pop3_client_login(c, "alice", "secret", "user", login) == POP3_OK, "login");
    feed(c, "+OK ready\r\n");
    pump(c, t);
    feed(c, "+OK\r\nSTLS\r\nUSER\r\n.\r\n");
    pump(c, t);
    feed(c, "+OK begin TLS\r\n");
    pump(c, t);
    CHECK(t->start_tls == 1, "START_TLS not reported once (%d)", t->start_tls);
    return c;
}

static void tls_handshake_failed(void)
{
    struct tally t = {0};
    pop3_handle stls = 0, login = 0;
    pop3_client *c = upgrade_pending(&t, &stls, &login);
    CHECK(pop3_client_tls_failed(c) == POP3_OK, "tls_failed");
    expect_closed_once(c, &t, POP3_ERR_TLS, "failed TLS handshake after STLS");
    CHECK(t.failed == 1 && t.failed_handle == stls, "the STLS handle did not fail");
    CHECK(t.cancelled == 1 && t.cancelled_handle == login &&
              t.cancelled_result == POP3_ERR_CANCELLED,
          "the login was not cancelled");
    CHECK(pop3_client_tls_failed(c) != POP3_OK, "tls_failed twice");
    CHECK(pop3_client_tls_established(c) != POP3_OK, "tls_established after failure");
    pop3_client_free(c);
}

static void eof_during_tls_upgrade(void)
{
    struct tally t = {0};
    pop3_handle stls = 0, login = 0;
    pop3_client *c = upgrade_pending(&t, &stls, &login);
    CHECK(pop3_client_receive_eof(c) == POP3_OK, "receive_eof");
    expect_closed_once(c, &t, POP3_ERR_PROTOCOL, "end of stream between START_TLS and TLS");
    CHECK(t.failed == 1 && t.failed_handle == stls, "the STLS handle did not fail");
    CHECK(t.cancelled == 1 && t.cancelled_handle == login, "the login was not cancelled");
    pop3_client_free(c);
}

static void injection_during_tls_upgrade(void)
{
    struct tally t = {0};
    pop3_handle stls = 0, login = 0;
    pop3_client *c = upgrade_pending(&t, &stls, &login);
    feed(c, "+OK logged in\r\n");
    expect_closed_once(c, &t, POP3_ERR_PROTOCOL, "bytes between START_TLS and TLS");
    pop3_client_free(c);
}

static void quit(void)
{
    struct tally t = {0};
    pop3_handle h;
    pop3_client *c = new_client(1);
    CHECK(pop3_client_quit(c, &h) == POP3_OK, "quit");
    feed(c, "+OK ready\r\n");
    pump(c, &t);
    feed(c, "+OK bye\r\n");
    expect_closed_once(c, &t, POP3_OK, "QUIT answered");
    pop3_client_free(c);
}

static void eof_while_idle(void)
{
    struct tally t = {0};
    pop3_client *c = new_client(1);
    feed(c, "+OK ready\r\n");
    pump(c, &t);
    pop3_client_receive_eof(c);
    expect_closed_once(c, &t, POP3_OK, "server closed while idle");
    pop3_client_free(c);
}

static void eof_before_greeting(void)
{
    struct tally t = {0};
    pop3_client *c = new_client(1);
    pop3_client_receive_eof(c);
    expect_closed_once(c, &t, POP3_ERR_PROTOCOL, "server closed before the greeting");
    pop3_client_free(c);
}

static void eof_in_a_reply(void)
{
    struct tally t = {0};
    pop3_handle h;
    pop3_client *c = new_client(1);
    CHECK(pop3_client_capa(c, &h) == POP3_OK, "capa");
    feed(c, "+OK ready\r\n");
    pump(c, &t);
    feed(c, "+OK\r\nUSER\r\n");
    pop3_client_receive_eof(c);
    expect_closed_once(c, &t, POP3_ERR_PROTOCOL, "server closed in the middle of a reply");
    pop3_client_free(c);
}

static void protocol_error(void)
{
    struct tally t = {0};
    pop3_handle h;
    pop3_client *c = new_client(1);
    CHECK(pop3_client_capa(c, &h) == POP3_OK, "capa");
    feed(c, "+OK ready\r\n");
    pump(c, &t);
    feed(c, "HELLO there\r\n");
    expect_closed_once(c, &t, POP3_ERR_PROTOCOL, "a reply that is no reply");
    pop3_client_free(c);
}

static void over_long_greeting(void)
{
    struct tally t = {0};
    pop3_client *c = new_client(1);
    char *line = malloc(20000);
    memset(line, 'x', 19999);
    memcpy(line, "+OK ", 4);
    line[19999] = '\0';
    feed(c, line);
    free(line);
    expect_closed_once(c, &t, POP3_ERR_PROTOCOL, "an over-long greeting");
    pop3_client_free(c);
}

static void eof_after_quit_answered(void)
{
    struct tally t = {0};
    pop3_handle h;
    pop3_client *c = new_client(1);
    CHECK(pop3_client_quit(c, &h) == POP3_OK, "quit");
    feed(c, "+OK ready\r\n");
    pump(c, &t);
    feed(c, "+OK bye\r\n");
    pump(c, &t);
    pop3_client_receive_eof(c);
    expect_closed_once(c, &t, POP3_OK, "QUIT answered, then end of stream");
    pop3_client_free(c);
}

int main(void)
{
    quit();
    eof_after_quit_answered();
    eof_while_idle();
    eof_before_greeting();
    eof_in_a_reply();
    protocol_error();
    over_long_greeting();
    injection_during_tls_upgrade();
    eof_during_tls_upgrade();
    tls_handshake_failed();
    if (failures != 0) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    return 0;
}
