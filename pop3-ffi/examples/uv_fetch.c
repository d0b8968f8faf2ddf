/*
 * uv_fetch: several POP3 sessions on one libuv loop, each retrieving every
 * message of its mailbox through the pop3 C ABI.
 *
 *   uv_fetch HOST CAFILE OUTDIR MODE:PORT:USER [MODE:PORT:USER ...]
 *
 * HOST is an IP address (v4 or v6). MODE is "none" (plain TCP), "starttls"
 * (STLS upgrade) or "implicit" (TLS from the first byte). Every session
 * logs in with the password in POP3_PASSWORD (in mode "none" only when
 * POP3_ALLOW_PLAINTEXT=1) and writes message N of session I byte for byte
 * to OUTDIR/I/N.eml (I counts from 1; the directory must exist), renamed
 * from a temporary name once the whole body has arrived. Exit status 0 when
 * every session retrieved every message; otherwise one line per failed
 * session on stderr. POP3_SESSION_TIMEOUT (seconds, default 3600) bounds
 * each whole session; a session silent for IDLE_TIMEOUT_MS fails.
 *
 * What it shows:
 *
 * - the completion style of output: the bytes pop3_client_pending_output
 *   lends go to uv_write as they are, and are reported with
 *   pop3_client_output_written when the write completes, however many
 *   other calls (events, reads) happen meanwhile; no copy, and the library
 *   wipes each byte once reported;
 * - TLS through OpenSSL memory BIOs: ciphertext travels over the uv_tcp_t,
 *   plaintext through the client (with TLS, SSL_write takes the plaintext
 *   at once, so output is reported written as soon as OpenSSL has it);
 * - a failed handshake after STLS reported with pop3_client_tls_failed, and
 *   every session ending with exactly one POP3_EVENT_CLOSED;
 * - an idle limit and an overall deadline kept with a uv_timer_t (the
 *   library has no clock).
 *
 * Body chunks are used before the next call on the client (written with
 * fwrite); a loop that writes files asynchronously (uv_fs_write) copies
 * each chunk first, since the chunk lives in the client's receive buffer.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "pop3.h"

#define IDLE_TIMEOUT_MS 30000
#define SESSION_TIMEOUT_S 3600
/* A server's STAT count must not decide how much is allocated. */
#define MAX_MESSAGES 1000000
#define READ_SIZE 65536

enum mode { MODE_NONE, MODE_STARTTLS, MODE_IMPLICIT };

struct session {
    int index; /* 1, 2, ...: names the output directory */
    enum mode mode;
    const char *user;
    int port;

    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write_req;
    uv_timer_t timer;
    uint64_t deadline; /* uv_now() value after which the session fails */
    int handles_open;  /* tcp and timer, until their close callbacks */
    int closing;

    SSL *ssl;
    BIO *network_in;  /* ciphertext from the server, for OpenSSL */
    BIO *network_out; /* ciphertext from OpenSSL, for the server */
    int handshaking;

    /* The one write in flight: either bytes lent by the client (reported
     * with pop3_client_output_written when done) or ciphertext we own. */
    int writing;
    const uint8_t *lent;
    size_t lent_len;
    uint8_t *owned;

    pop3_client *client;
    pop3_handle login, stat, quit;
    pop3_handle *retr; /* retr[i]: RETR i+1 */
    uint32_t count, retrieved;
    int stat_known, closed_ok;

    FILE *file;
    uint32_t file_msg;
    char tmp_path[4096];

    uint8_t read_buf[READ_SIZE];
    char error[512];
};

static SSL_CTX *ssl_ctx;
static const char *host;
static const char *outdir;
static const char *password;
static int allow_plaintext;

static void close_session(struct session *s);
static void pump_out(struct session *s);
static void drive(struct session *s);

/* ----- failure and text ----- */

/* Keeps the first failure of a session: the one worth reporting. */
static void record(struct session *s, const char *fmt, va_list ap)
{
    if (s->error[0] == '\0')
        vsnprintf(s->error, sizeof s->error, fmt, ap);
}

static void fail(struct session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(s, fmt, ap);
    va_end(ap);
    close_session(s);
}

/* A failure the client is told about: it ends the session itself, with
 * events (and POP3_EVENT_CLOSED) still to handle. */
static void fail_later(struct session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(s, fmt, ap);
    va_end(ap);
}

/* One line on stderr with control bytes shown as '?': server text comes
 * from the library already made safe; this guards the rest of the line. */
static void print_safe(int index, const char *text)
{
    const unsigned char *p;
    fprintf(stderr, "uv_fetch: session %d: ", index);
    for (p = (const unsigned char *)text; *p != '\0'; p++)
        fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, stderr);
    fputc('\n', stderr);
}

static const char *tls_error(void)
{
    static char buf[256];
    unsigned long e = ERR_get_error();
    if (e == 0)
        return "connection closed during the handshake";
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

/* ----- time ----- */

static void on_timeout(uv_timer_t *timer)
{
    struct session *s = timer->data;
    fail(s, uv_now(s->loop) >= s->deadline ? "the session ran past its overall time limit"
                                           : "timed out waiting for the server");
}

/* Re-arms the timer: the idle limit, or what remains of the session. */
static void rearm(struct session *s)
{
    uint64_t now = uv_now(s->loop);
    uint64_t wait = IDLE_TIMEOUT_MS;
    if (s->closing)
        return;
    if (s->deadline <= now)
        wait = 0;
    else if (s->deadline - now < wait)
        wait = s->deadline - now;
    uv_timer_start(&s->timer, on_timeout, wait, 0);
}

/* ----- messages ----- */

static void discard_file(struct session *s)
{
    if (s->file != NULL) {
        fclose(s->file);
        s->file = NULL;
        unlink(s->tmp_path);
    }
}

static uint32_t msg_of(const struct session *s, pop3_handle h)
{
    size_t lo = 0, hi = s->count;
    while (s->retr != NULL && lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->retr[mid] == h)
            return (uint32_t)mid + 1;
        if (s->retr[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static void body_start(struct session *s, uint32_t msg)
{
    discard_file(s);
    snprintf(s->tmp_path, sizeof s->tmp_path, "%s/%d/.%u.part", outdir, s->index, msg);
    s->file = fopen(s->tmp_path, "wb");
    if (s->file == NULL) {
        fail(s, "cannot create %s: %s", s->tmp_path, strerror(errno));
        return;
    }
    s->file_msg = msg;
}

static void body_end(struct session *s, uint32_t msg)
{
    char path[4096];
    int bad;
    if (s->file == NULL || s->file_msg != msg) {
        fail(s, "message %u ended without having started", msg);
        return;
    }
    bad = fclose(s->file) != 0;
    s->file = NULL;
    snprintf(path, sizeof path, "%s/%d/%u.eml", outdir, s->index, msg);
    if (bad || rename(s->tmp_path, path) != 0) {
        unlink(s->tmp_path);
        fail(s, "cannot write %s", path);
        return;
    }
    s->retrieved++;
}

/* ----- commands ----- */

static void submit_login(struct session *s)
{
    pop3_result r = pop3_client_login(s->client, s->user, password, "auto", &s->login);
    if (r == POP3_OK)
        r = pop3_client_stat(s->client, &s->stat);
    if (r != POP3_OK)
        fail(s, "login: %s", pop3_result_message(r));
}

static void submit_retrieval(struct session *s, uint64_t count)
{
    pop3_result r;
    uint32_t i, *msgs;
    if (count > MAX_MESSAGES) {
        fail(s, "the server reports %llu messages, more than the %u this program retrieves",
             (unsigned long long)count, (unsigned)MAX_MESSAGES);
        return;
    }
    s->count = (uint32_t)count;
    s->stat_known = 1;
    if (s->count > 0) {
        msgs = malloc(sizeof *msgs * s->count);
        s->retr = malloc(sizeof *s->retr * s->count);
        if (msgs == NULL || s->retr == NULL) {
            free(msgs);
            fail(s, "out of memory");
            return;
        }
        for (i = 0; i < s->count; i++)
            msgs[i] = i + 1;
        r = pop3_client_retr_many(s->client, msgs, s->count, s->retr);
        free(msgs);
        if (r != POP3_OK) {
            fail(s, "RETR: %s", pop3_result_message(r));
            return;
        }
    }
    r = pop3_client_quit(s->client, &s->quit);
    if (r != POP3_OK)
        fail(s, "QUIT: %s", pop3_result_message(r));
}

static int new_client(struct session *s, int encrypted)
{
    pop3_config *config = NULL;
    pop3_result r = pop3_config_new(&config);
    if (r == POP3_OK) {
        pop3_config_set_encrypted(config, encrypted);
        pop3_config_set_allow_plaintext_credentials(config, allow_plaintext);
        pop3_config_set_read_size(config, READ_SIZE);
        r = pop3_client_new(config, &s->client);
        pop3_config_free(config);
    }
    if (r != POP3_OK) {
        fail(s, "client: %s", pop3_result_message(r));
        return -1;
    }
    return 0;
}

/* tls-exporter channel binding (TLS 1.3), so that "auto" may choose
 * SCRAM-SHA-256-PLUS; without it the login works unbound. */
static void bind_channel(struct session *s)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    unsigned char data[32];
    if (SSL_version(s->ssl) >= TLS1_3_VERSION &&
        SSL_export_keying_material(s->ssl, data, sizeof data, label, sizeof label - 1, NULL, 0,
                                   0) == 1)
        pop3_client_set_channel_binding(s->client, POP3_CHANNEL_BINDING_TLS_EXPORTER, data,
                                        sizeof data);
}

/* ----- TLS over memory BIOs ----- */

static int start_tls(struct session *s)
{
    unsigned char addr[16];
    s->ssl = SSL_new(ssl_ctx);
    s->network_in = BIO_new(BIO_s_mem());
    s->network_out = BIO_new(BIO_s_mem());
    if (s->ssl == NULL || s->network_in == NULL || s->network_out == NULL) {
        BIO_free(s->network_in);
        BIO_free(s->network_out);
        s->network_in = s->network_out = NULL;
        fail(s, "TLS setup failed: %s", tls_error());
        return -1;
    }
    /* The SSL owns both BIOs from here on. */
    SSL_set_bio(s->ssl, s->network_in, s->network_out);
    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), host) != 1) {
            fail(s, "TLS setup failed: cannot expect address %s", host);
            return -1;
        }
    } else if (SSL_set1_host(s->ssl, host) != 1 || SSL_set_tlsext_host_name(s->ssl, host) != 1) {
        fail(s, "TLS setup failed: cannot expect host %s", host);
        return -1;
    }
    SSL_set_connect_state(s->ssl);
    s->handshaking = 1;
    return 0;
}

/* Moves decrypted bytes into the client, straight into its input buffer,
 * handling events after each read so that the client never holds more than
 * one read unprocessed. */
static void read_tls(struct session *s)
{
    while (!s->closing && !s->handshaking && s->client != NULL) {
        uint8_t *buf;
        size_t cap;
        int got, e;
        pop3_result r = pop3_client_input_buffer(s->client, &buf, &cap);
        if (r != POP3_OK) {
            fail(s, "input: %s", pop3_result_message(r));
            return;
        }
        got = SSL_read(s->ssl, buf, cap > 1 << 30 ? 1 << 30 : (int)cap);
        pop3_client_input_written(s->client, got > 0 ? (size_t)got : 0);
        if (got <= 0) {
            e = SSL_get_error(s->ssl, got);
            if (e == SSL_ERROR_ZERO_RETURN) {
                pop3_client_receive_eof(s->client);
                drive(s);
            } else if (e != SSL_ERROR_WANT_READ) {
                fail(s, "TLS read failed: %s", tls_error());
            }
            return;
        }
        drive(s);
    }
}

static void handshake(struct session *s)
{
    int rc = SSL_do_handshake(s->ssl);
    if (rc != 1) {
        int e = SSL_get_error(s->ssl, rc);
        long verify;
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            pump_out(s); /* the next flight of the handshake */
            return;
        }
        verify = SSL_get_verify_result(s->ssl);
        if (verify != X509_V_OK)
            fail_later(s, "TLS handshake failed: certificate rejected: %s",
                       X509_verify_cert_error_string(verify));
        else
            fail_later(s, "TLS handshake failed: %s", tls_error());
        if (s->client == NULL) {
            close_session(s); /* implicit TLS: no POP3 session yet */
            return;
        }
        /* After STLS: the client fails the STLS handle, cancels the login
         * queued behind it and ends with POP3_EVENT_CLOSED. */
        s->handshaking = 0;
        pop3_client_tls_failed(s->client);
        drive(s);
        return;
    }
    s->handshaking = 0;
    if (s->client == NULL) {
        /* Implicit TLS: the POP3 session starts now. */
        if (new_client(s, 1) != 0)
            return;
        bind_channel(s);
        submit_login(s);
    } else {
        pop3_result r = pop3_client_tls_established(s->client);
        if (r != POP3_OK) {
            fail(s, "TLS: %s", pop3_result_message(r));
            return;
        }
        /* Submitted only now, so that it can be bound to the channel. */
        bind_channel(s);
        submit_login(s);
    }
    read_tls(s); /* the server may have sent its first bytes already */
    drive(s);
}

/* ----- writing: one uv_write in flight ----- */

static void on_written(uv_write_t *req, int status)
{
    struct session *s = req->data;
    s->writing = 0;
    free(s->owned);
    s->owned = NULL;
    if (s->lent != NULL && !s->closing) {
        /* Completion: the lent bytes are the kernel's no more. The client
         * wipes them now. */
        pop3_client_output_written(s->client, status == 0 ? s->lent_len : 0);
    }
    s->lent = NULL;
    if (s->closing)
        return;
    if (status < 0) {
        fail(s, "write failed: %s", uv_strerror(status));
        return;
    }
    pump_out(s);
    drive(s);
}

static void start_write(struct session *s, const uint8_t *bytes, size_t len, int lent)
{
    uv_buf_t buf = uv_buf_init((char *)bytes, (unsigned)len);
    int rc;
    s->writing = 1;
    if (lent) {
        s->lent = bytes;
        s->lent_len = len;
    } else {
        s->owned = (uint8_t *)bytes;
    }
    s->write_req.data = s;
    rc = uv_write(&s->write_req, (uv_stream_t *)&s->tcp, &buf, 1, on_written);
    if (rc < 0) {
        s->writing = 0;
        s->lent = NULL;
        free(s->owned);
        s->owned = NULL;
        fail(s, "write failed: %s", uv_strerror(rc));
    }
}

/* Starts the next write, if none is in flight. */
static void pump_out(struct session *s)
{
    const uint8_t *out;
    size_t len;
    if (s->closing || s->writing)
        return;
    if (s->ssl == NULL) {
        /* Plaintext: the client's own bytes go to the kernel, no copy. */
        if (s->client != NULL && pop3_client_pending_output(s->client, &out, &len) == POP3_OK &&
            len <= 0x7fffffff)
            start_write(s, out, len, 1);
        return;
    }
    /* TLS: OpenSSL takes the plaintext at once (into the memory BIO). */
    while (!s->handshaking && s->client != NULL &&
           pop3_client_pending_output(s->client, &out, &len) == POP3_OK) {
        int n = SSL_write(s->ssl, out, len > 1 << 30 ? 1 << 30 : (int)len);
        if (n <= 0) {
            fail(s, "TLS write failed: %s", tls_error());
            return;
        }
        pop3_client_output_written(s->client, (size_t)n);
    }
    if (BIO_ctrl_pending(s->network_out) > 0) {
        size_t pending = BIO_ctrl_pending(s->network_out);
        uint8_t *cipher = malloc(pending);
        int n;
        if (cipher == NULL) {
            fail(s, "out of memory");
            return;
        }
        n = BIO_read(s->network_out, cipher, (int)pending);
        if (n <= 0) {
            free(cipher);
            fail(s, "TLS output failed");
            return;
        }
        start_write(s, cipher, (size_t)n, 0);
    }
}

/* ----- events ----- */

static void handle_event(struct session *s, const pop3_event *ev)
{
    uint32_t msg;
    switch (ev->kind) {
    case POP3_EVENT_OK:
        if (ev->handle != 0 && ev->handle == s->stat)
            submit_retrieval(s, ev->count);
        break;
    case POP3_EVENT_ERR:
        if (ev->handle != 0)
            fail(s, "%s refused: %s%s%s", ev->handle == s->login ? "login" : "command",
                 ev->code ? ev->code : "", ev->code ? " " : "", ev->text);
        break;
    case POP3_EVENT_BODY_START:
        msg = msg_of(s, ev->handle);
        if (msg != 0)
            body_start(s, msg);
        break;
    case POP3_EVENT_BODY:
        /* Used before the next call on the client: no copy needed. */
        if (s->file != NULL && msg_of(s, ev->handle) == s->file_msg &&
            fwrite(ev->data, 1, ev->data_len, s->file) != ev->data_len)
            fail(s, "cannot write %s", s->tmp_path);
        break;
    case POP3_EVENT_BODY_END:
        msg = msg_of(s, ev->handle);
        if (msg != 0)
            body_end(s, msg);
        break;
    case POP3_EVENT_FAILED:
        discard_file(s);
        fail(s, "command failed: %s", ev->text);
        break;
    case POP3_EVENT_CANCELLED:
        fail(s, "command not sent: %s", ev->text);
        break;
    case POP3_EVENT_START_TLS:
        /* Plaintext is over: from now on the bytes go through OpenSSL. */
        if (start_tls(s) == 0)
            handshake(s);
        break;
    case POP3_EVENT_CLOSED:
        discard_file(s);
        if (ev->result != POP3_OK)
            fail(s, "session failed: %s", ev->text);
        else
            s->closed_ok = 1;
        close_session(s);
        break;
    default:
        break;
    }
}

/* Handles every ready event, then starts the next write. */
static void drive(struct session *s)
{
    pop3_event ev;
    while (!s->closing && !s->handshaking && s->client != NULL &&
           pop3_client_next_event(s->client, &ev) == POP3_OK)
        handle_event(s, &ev);
    pump_out(s);
}

/* ----- reading ----- */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct session *s = handle->data;
    (void)suggested;
    *buf = uv_buf_init((char *)s->read_buf, sizeof s->read_buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct session *s = stream->data;
    (void)buf;
    if (s->closing || nread == 0)
        return;
    rearm(s);
    if (nread < 0) {
        if (nread != UV_EOF) {
            fail(s, "read failed: %s", uv_strerror((int)nread));
            return;
        }
        if (s->client == NULL) {
            fail(s, "TLS handshake failed: connection closed");
            return;
        }
        if (s->handshaking) {
            /* The STLS upgrade can never finish: the client ends the
             * session (the login queued behind it is cancelled). */
            pop3_client_tls_failed(s->client);
            s->handshaking = 0;
        } else {
            pop3_client_receive_eof(s->client);
        }
        drive(s);
        return;
    }
    if (s->ssl == NULL) {
        pop3_result r = pop3_client_receive(s->client, s->read_buf, (size_t)nread);
        if (r != POP3_OK) {
            fail(s, "input: %s", pop3_result_message(r));
            return;
        }
        drive(s);
        return;
    }
    if (BIO_write(s->network_in, s->read_buf, (int)nread) != (int)nread) {
        fail(s, "TLS input failed");
        return;
    }
    if (s->handshaking) {
        handshake(s);
        if (s->handshaking || s->closing)
            return;
    }
    read_tls(s);
    drive(s);
}

/* ----- connecting and closing ----- */

static void on_connect(uv_connect_t *req, int status)
{
    struct session *s = req->data;
    if (s->closing)
        return;
    if (status < 0) {
        fail(s, "cannot connect to port %d: %s", s->port, uv_strerror(status));
        return;
    }
    rearm(s);
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (s->mode == MODE_IMPLICIT) {
        if (start_tls(s) == 0)
            handshake(s);
        return;
    }
    if (new_client(s, 0) != 0)
        return;
    if (s->mode == MODE_STARTTLS) {
        pop3_handle stls;
        pop3_result r = pop3_client_start_tls(s->client, &stls);
        if (r != POP3_OK)
            fail(s, "STLS: %s", pop3_result_message(r));
    } else if (!allow_plaintext) {
        fail(s, "refusing to send the password without TLS (set POP3_ALLOW_PLAINTEXT=1)");
        return;
    } else {
        submit_login(s);
    }
    drive(s);
}

static void on_closed(uv_handle_t *handle)
{
    struct session *s = handle->data;
    if (--s->handles_open > 0)
        return;
    /* Every callback has run (a write in flight was cancelled first): what
     * the client lent is no longer in use. */
    pop3_client_free(s->client);
    s->client = NULL;
    SSL_free(s->ssl);
    s->ssl = NULL;
}

static void close_session(struct session *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    discard_file(s);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->tcp, on_closed);
    uv_close((uv_handle_t *)&s->timer, on_closed);
}

static int parse_spec(struct session *s, char *spec)
{
    char *mode = strtok(spec, ":"), *port = strtok(NULL, ":"), *user = strtok(NULL, "");
    if (mode == NULL || port == NULL || user == NULL)
        return -1;
    if (strcmp(mode, "none") == 0)
        s->mode = MODE_NONE;
    else if (strcmp(mode, "starttls") == 0)
        s->mode = MODE_STARTTLS;
    else if (strcmp(mode, "implicit") == 0)
        s->mode = MODE_IMPLICIT;
    else
        return -1;
    s->port = atoi(port);
    s->user = user;
    return s->port > 0 && s->port < 65536 ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct session *sessions;
    struct sockaddr_storage addr;
    const char *env;
    long long session_s = SESSION_TIMEOUT_S;
    int count, i, failed = 0;
    uv_loop_t *loop = uv_default_loop();

    if (argc < 5) {
        fprintf(stderr, "usage: uv_fetch HOST CAFILE OUTDIR MODE:PORT:USER...\n");
        return 2;
    }
    host = argv[1];
    outdir = argv[3];
    password = getenv("POP3_PASSWORD");
    env = getenv("POP3_ALLOW_PLAINTEXT");
    allow_plaintext = env != NULL && strcmp(env, "1") == 0;
    env = getenv("POP3_SESSION_TIMEOUT");
    if (env != NULL && env[0] != '\0')
        session_s = atoll(env);
    if (password == NULL || session_s <= 0) {
        fprintf(stderr, "uv_fetch: set POP3_PASSWORD (and a positive POP3_SESSION_TIMEOUT)\n");
        return 2;
    }
    if (uv_ip4_addr(host, 0, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, 0, (struct sockaddr_in6 *)&addr) != 0) {
        fprintf(stderr, "uv_fetch: HOST must be an IP address\n");
        return 2;
    }

    ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (ssl_ctx == NULL || SSL_CTX_load_verify_locations(ssl_ctx, argv[2], NULL) != 1) {
        fprintf(stderr, "uv_fetch: cannot load CA file %s\n", argv[2]);
        SSL_CTX_free(ssl_ctx);
        return 2;
    }
    SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, NULL);

    count = argc - 4;
    sessions = calloc((size_t)count, sizeof *sessions);
    if (sessions == NULL)
        return 2;
    for (i = 0; i < count; i++) {
        struct session *s = &sessions[i];
        s->index = i + 1;
        s->loop = loop;
        if (parse_spec(s, argv[4 + i]) != 0) {
            fprintf(stderr, "uv_fetch: bad session %s (MODE:PORT:USER)\n", argv[4 + i]);
            return 2;
        }
        /* Each session's deadline counts from before it connects. */
        s->deadline = uv_now(loop) + (uint64_t)session_s * 1000;
        uv_tcp_init(loop, &s->tcp);
        uv_timer_init(loop, &s->timer);
        s->tcp.data = s->timer.data = s->connect.data = s;
        s->handles_open = 2;
        if (addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)s->port);
        else
            ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)s->port);
        rearm(s);
        if (uv_tcp_connect(&s->connect, &s->tcp, (const struct sockaddr *)&addr, on_connect) != 0)
            fail(s, "cannot connect to port %d", s->port);
    }

    uv_run(loop, UV_RUN_DEFAULT);

    for (i = 0; i < count; i++) {
        struct session *s = &sessions[i];
        if (s->error[0] == '\0' && !(s->closed_ok && s->stat_known && s->retrieved == s->count))
            snprintf(s->error, sizeof s->error, "retrieved %u of %u messages", s->retrieved,
                     s->count);
        if (s->error[0] != '\0') {
            print_safe(s->index, s->error);
            failed = 1;
        }
        free(s->retr);
    }
    free(sessions);
    SSL_CTX_free(ssl_ctx);
    uv_loop_close(loop);
    return failed;
}
