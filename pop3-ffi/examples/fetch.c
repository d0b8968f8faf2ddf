/*
 * fetch: retrieve every message of a POP3 mailbox through the pop3 C ABI.
 *
 *   fetch HOST PORT MODE USER CAFILE OUTDIR
 *
 * MODE is "none" (plain TCP), "starttls" (STLS upgrade) or "implicit" (TLS
 * from the first byte, port 995). The password comes from the environment
 * variable POP3_PASSWORD; in mode "none" it is sent only when
 * POP3_ALLOW_PLAINTEXT=1. Message N is written byte for byte to
 * OUTDIR/N.eml: first to a temporary name, renamed only once the whole body
 * has arrived, so a message that fails leaves no file. Exit status 0 means
 * every message was retrieved; otherwise one line on stderr says why.
 * POP3_TRACE=1 prints the protocol lines (passwords redacted) on stderr.
 * POP3_AUTH chooses the login method (default "auto", the strongest the
 * server offers); "xoauth2" or "oauthbearer" log in with an OAuth 2.0
 * access token, given in POP3_PASSWORD like a password.
 * POP3_SESSION_TIMEOUT (seconds, default 3600) bounds the whole session,
 * however busy the server keeps it; IDLE_TIMEOUT_MS bounds each silence.
 *
 * One thread, one non-blocking socket, one poll(2) loop. The pop3 library
 * makes every protocol decision; this program only moves bytes, runs
 * OpenSSL when told to, and writes files.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "pop3.h"

/* How long the server may stay silent (and a connect may take). */
#define IDLE_TIMEOUT_MS 30000
/* The most messages one run retrieves: the server's STAT count decides how
 * much this program allocates (a handle per message), and a server must not
 * be able to make it ask for gigabytes ("+OK 4000000000 0"). */
#define MAX_MESSAGES 1000000

/* How long a whole session may take by default: a server that trickles a
 * byte now and then never trips the idle limit, only this. The library has
 * no clock; the loop keeps this deadline. */
#define SESSION_TIMEOUT_S 3600

/* A monotonic clock in milliseconds, for the session's deadline. */
static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum mode { MODE_NONE, MODE_STARTTLS, MODE_IMPLICIT };

struct fetch {
    const char *host;
    enum mode mode;
    const char *user;
    const char *auth;    /* the login method: POP3_AUTH, or "auto" */
    const char *outdir;
    int trace;

    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    int handshaking;     /* a TLS handshake is in progress */
    int want_write;      /* the last write would block */
    int ssl_wants_write; /* OpenSSL needs the socket writable to go on */
    size_t ssl_retry;    /* length of an SSL_write to repeat, or 0 */

    pop3_client *client;
    pop3_handle stls, login, stat, quit;
    pop3_handle *retr;   /* retr[i] is the handle of RETR i+1 */
    uint32_t count;      /* messages in the mailbox, once STAT answered */
    uint32_t retrieved;
    int stat_known;

    /* The message being received. */
    FILE *file;
    uint32_t file_msg;
    char tmp_path[4096];

    int done;            /* the session ended (QUIT answered or failure) */
    char error[512];     /* the first failure; empty while all is well */
};

static void fail(struct fetch *f, const char *fmt, ...)
{
    if (f->error[0] != '\0')
        return; /* the first failure is the one worth reporting */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->error, sizeof f->error, fmt, ap);
    va_end(ap);
    f->done = 1;
}

static void fail_pop3(struct fetch *f, const char *what, pop3_result r)
{
    fail(f, "%s: %s", what, pop3_result_message(r));
}

/* Prints text on stderr with every control byte (C0 and DEL) shown as '?'.
 * Server text comes from the library already made safe (no escape sequence,
 * no bidi override); this guards the rest of the line too (file names, what
 * the system says), so that nothing printed can drive the terminal. */
static void print_safe(const char *prefix, const char *text)
{
    const unsigned char *p;
    fputs(prefix, stderr);
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

/* ----- the message being written ----- */

static void discard_file(struct fetch *f)
{
    if (f->file != NULL) {
        fclose(f->file);
        f->file = NULL;
        unlink(f->tmp_path);
    }
}

static uint32_t msg_of(const struct fetch *f, pop3_handle h)
{
    /* Handles grow with every command, so retr[] is sorted. */
    if (f->retr == NULL || f->count == 0)
        return 0;
    size_t lo = 0, hi = f->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->retr[mid] == h)
            return (uint32_t)mid + 1;
        if (f->retr[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static void body_start(struct fetch *f, uint32_t msg)
{
    discard_file(f);
    snprintf(f->tmp_path, sizeof f->tmp_path, "%s/.%u.eml.part", f->outdir, msg);
    f->file = fopen(f->tmp_path, "wb");
    if (f->file == NULL) {
        fail(f, "cannot create %s: %s", f->tmp_path, strerror(errno));
        return;
    }
    f->file_msg = msg;
}

static void body_end(struct fetch *f, uint32_t msg)
{
    char path[4096];
    if (f->file == NULL || f->file_msg != msg) {
        fail(f, "message %u ended without having started", msg);
        return;
    }
    int bad = fflush(f->file) != 0 || fsync(fileno(f->file)) != 0;
    bad |= fclose(f->file) != 0;
    f->file = NULL;
    snprintf(path, sizeof path, "%s/%u.eml", f->outdir, msg);
    if (bad || rename(f->tmp_path, path) != 0) {
        unlink(f->tmp_path);
        fail(f, "cannot write %s: %s", path, strerror(errno));
        return;
    }
    f->retrieved++;
}

/* ----- commands ----- */

/* Queues the login and STAT: the library holds them back until the session
 * allows them (after the greeting, after login). */
static void submit_login(struct fetch *f, const char *password)
{
    pop3_result r = pop3_client_login(f->client, f->user, password, f->auth, &f->login);
    if (r == POP3_ERR_PLAINTEXT_CREDENTIALS) {
        fail(f, "refusing to send the password without TLS (set POP3_ALLOW_PLAINTEXT=1 to allow)");
        return;
    }
    if (r != POP3_OK) {
        fail_pop3(f, "login", r);
        return;
    }
    r = pop3_client_stat(f->client, &f->stat);
    if (r != POP3_OK)
        fail_pop3(f, "STAT", r);
}

/* What the session needs first: STLS (the login follows once TLS is up, so
 * that it can be bound to the TLS channel), or the login itself. */
static void submit_start(struct fetch *f, const char *password)
{
    if (f->mode == MODE_STARTTLS) {
        pop3_result r = pop3_client_start_tls(f->client, &f->stls);
        if (r != POP3_OK)
            fail_pop3(f, "STLS", r);
        return;
    }
    submit_login(f, password);
}

static void submit_retrieval(struct fetch *f, uint32_t count)
{
    pop3_result r;
    if (count > MAX_MESSAGES) {
        fail(f, "the server reports %u messages, more than the %u this program retrieves", count,
             (unsigned)MAX_MESSAGES);
        return;
    }
    f->count = count;
    f->stat_known = 1;
    if (count > 0) {
        uint32_t *msgs = malloc(sizeof *msgs * count);
        f->retr = malloc(sizeof *f->retr * count);
        if (msgs == NULL || f->retr == NULL) {
            free(msgs);
            fail(f, "out of memory for %u messages", count);
            return;
        }
        for (uint32_t i = 0; i < count; i++)
            msgs[i] = i + 1;
        r = pop3_client_retr_many(f->client, msgs, count, f->retr);
        free(msgs);
        if (r != POP3_OK) {
            fail_pop3(f, "RETR", r);
            return;
        }
    }
    r = pop3_client_quit(f->client, &f->quit);
    if (r != POP3_OK)
        fail_pop3(f, "QUIT", r);
}

/* Sets the name the certificate must carry, and SNI for DNS names. */
static int expect_host(struct fetch *f)
{
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, f->host, addr) == 1 || inet_pton(AF_INET6, f->host, addr) == 1;
    if (is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(f->ssl), f->host) != 1)
            return -1;
        return 0;
    }
    if (SSL_set1_host(f->ssl, f->host) != 1 || SSL_set_tlsext_host_name(f->ssl, f->host) != 1)
        return -1;
    return 0;
}

/* Prepares a TLS session on the socket; the main loop drives the handshake. */
static void start_handshake(struct fetch *f)
{
    f->ssl = SSL_new(f->ctx);
    if (f->ssl == NULL || SSL_set_fd(f->ssl, f->fd) != 1) {
        fail(f, "TLS setup failed: %s", tls_error());
        return;
    }
    if (expect_host(f) != 0) {
        fail(f, "TLS setup failed: cannot set the expected host name %s", f->host);
        return;
    }
    f->handshaking = 1;
}

/* ----- events ----- */

static const char *what(const struct fetch *f, pop3_handle h)
{
    if (h == f->stls)
        return "STLS";
    if (h == f->login)
        return "login";
    if (h == f->stat)
        return "STAT";
    if (h == f->quit)
        return "QUIT";
    if (msg_of(f, h) != 0)
        return "RETR";
    return "command";
}

static void handle_event(struct fetch *f, const pop3_event *ev)
{
    uint32_t msg;
    switch (ev->kind) {
    case POP3_EVENT_OK:
        if (ev->handle != 0 && ev->handle == f->stat)
            submit_retrieval(f, (uint32_t)ev->count);
        break;
    case POP3_EVENT_ERR:
        if (ev->handle == 0)
            break;
        msg = msg_of(f, ev->handle);
        if (msg != 0)
            fail(f, "RETR %u refused: %s%s%s", msg, ev->code ? ev->code : "",
                 ev->code ? " " : "", ev->text);
        else {
            /* An OAuth login: why the token was refused, when the server said. */
            const char *refusal = NULL;
            size_t refusal_len = 0;
            if (pop3_client_token_refusal(f->client, &refusal, &refusal_len) != POP3_OK)
                refusal = NULL;
            fail(f, "%s refused: %s%s%s%s%s", what(f, ev->handle), ev->code ? ev->code : "",
                 ev->code ? " " : "", ev->text, refusal ? ": " : "", refusal ? refusal : "");
        }
        break;
    case POP3_EVENT_BODY_START:
        msg = msg_of(f, ev->handle);
        if (msg != 0)
            body_start(f, msg);
        break;
    case POP3_EVENT_BODY:
        if (f->file != NULL && msg_of(f, ev->handle) == f->file_msg &&
            fwrite(ev->data, 1, ev->data_len, f->file) != ev->data_len)
            fail(f, "cannot write %s: %s", f->tmp_path, strerror(errno));
        break;
    case POP3_EVENT_BODY_END:
        msg = msg_of(f, ev->handle);
        if (msg != 0)
            body_end(f, msg);
        break;
    case POP3_EVENT_FAILED:
        discard_file(f);
        fail(f, "%s failed: %s", what(f, ev->handle), ev->text);
        break;
    case POP3_EVENT_CANCELLED:
        fail(f, "%s not sent: %s", what(f, ev->handle), ev->text);
        break;
    case POP3_EVENT_START_TLS:
        /* Stop reading plaintext; the handshake runs in the main loop. */
        start_handshake(f);
        break;
    case POP3_EVENT_TRACE:
        if (f->trace)
            print_safe(ev->direction == POP3_TRACE_SENT ? "C: " : "S: ", ev->text);
        break;
    case POP3_EVENT_CLOSED:
        discard_file(f);
        if (ev->result != POP3_OK)
            fail(f, "session failed: %s", ev->text);
        f->done = 1;
        break;
    default:
        break;
    }
}

/* ----- moving bytes ----- */

/* Writes pending output until none is left or the socket is full. */
static void flush(struct fetch *f)
{
    const uint8_t *out;
    size_t len;
    f->want_write = 0;
    while (!f->handshaking && pop3_client_pending_output(f->client, &out, &len) == POP3_OK) {
        ssize_t n;
        if (f->ssl != NULL) {
            /* After a blocked SSL_write, OpenSSL wants the same bytes again. */
            int size = (int)(f->ssl_retry ? f->ssl_retry : (len > 65536 ? 65536 : len));
            int w = SSL_write(f->ssl, out, size);
            if (w <= 0) {
                int e = SSL_get_error(f->ssl, w);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    f->ssl_retry = (size_t)size;
                    f->want_write = 1;
                    f->ssl_wants_write = e == SSL_ERROR_WANT_WRITE;
                    return;
                }
                fail(f, "TLS write failed: %s", tls_error());
                return;
            }
            f->ssl_retry = 0;
            n = w;
        } else {
            n = send(f->fd, out, len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    f->want_write = 1;
                    return;
                }
                fail(f, "write failed: %s", strerror(errno));
                return;
            }
        }
        pop3_result r = pop3_client_output_written(f->client, (size_t)n);
        if (r != POP3_OK) {
            fail_pop3(f, "output", r);
            return;
        }
    }
}

/* Handles every ready event, then writes what they queued. */
static void process(struct fetch *f)
{
    pop3_event ev;
    pop3_result r = POP3_DONE;
    while (!f->done && !f->handshaking &&
           (r = pop3_client_next_event(f->client, &ev)) == POP3_OK)
        handle_event(f, &ev);
    if (f->done || f->handshaking)
        return; /* STLS: nothing is queued behind it until TLS is up */
    if (r != POP3_DONE) {
        fail_pop3(f, "event", r);
        return;
    }
    /* POP3_DONE: the client waits for the server; send what it has first. */
    flush(f);
}

/* Reads until the socket is drained, feeding the client straight into its
 * own buffer and handling events after every read. */
static void read_some(struct fetch *f)
{
    while (!f->done && !f->handshaking) {
        uint8_t *buf;
        size_t cap;
        pop3_result r = pop3_client_input_buffer(f->client, &buf, &cap);
        if (r != POP3_OK) {
            fail_pop3(f, "input", r);
            return;
        }
        ssize_t n;
        if (f->ssl != NULL) {
            int got = SSL_read(f->ssl, buf, cap > 1 << 30 ? 1 << 30 : (int)cap);
            if (got <= 0) {
                int e = SSL_get_error(f->ssl, got);
                pop3_client_input_written(f->client, 0);
                if (e == SSL_ERROR_WANT_READ)
                    return;
                if (e == SSL_ERROR_WANT_WRITE) {
                    f->ssl_wants_write = 1;
                    return;
                }
                if (e == SSL_ERROR_ZERO_RETURN) {
                    pop3_client_receive_eof(f->client);
                } else {
                    /* A TCP close without close_notify is still the end of
                     * the stream; the library decides if it came too soon. */
                    ERR_clear_error();
                    pop3_client_receive_eof(f->client);
                }
                process(f);
                return;
            }
            n = got;
        } else {
            n = recv(f->fd, buf, cap, 0);
            if (n < 0) {
                pop3_client_input_written(f->client, 0);
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    return;
                fail(f, "read failed: %s", strerror(errno));
                return;
            }
            if (n == 0) {
                pop3_client_input_written(f->client, 0);
                pop3_client_receive_eof(f->client);
                process(f);
                return;
            }
        }
        r = pop3_client_input_written(f->client, (size_t)n);
        if (r != POP3_OK) {
            fail_pop3(f, "input", r);
            return;
        }
        process(f);
    }
}

/* ----- setup ----- */

static int connect_to(struct fetch *f, const char *port)
{
    struct addrinfo hints, *res, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(f->host, port, &hints, &res);
    if (rc != 0) {
        fail(f, "cannot resolve %s: %s", f->host, gai_strerror(rc));
        return -1;
    }
    int last = ECONNREFUSED;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            last = errno;
            close(fd);
            continue;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof err;
        if (poll(&p, 1, IDLE_TIMEOUT_MS) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
            freeaddrinfo(res);
            return fd;
        }
        last = err != 0 ? err : ETIMEDOUT;
        close(fd);
    }
    freeaddrinfo(res);
    fail(f, "cannot connect to %s port %s: %s", f->host, port, strerror(last));
    return -1;
}

static int setup_tls(struct fetch *f, const char *cafile)
{
    f->ctx = SSL_CTX_new(TLS_client_method());
    if (f->ctx == NULL) {
        fail(f, "TLS setup failed: %s", tls_error());
        return -1;
    }
    SSL_CTX_set_min_proto_version(f->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(f->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(f->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_load_verify_locations(f->ctx, cafile, NULL) != 1) {
        fail(f, "cannot load CA file %s: %s", cafile, tls_error());
        return -1;
    }
    return 0;
}

static int new_client(struct fetch *f, int encrypted)
{
    pop3_config *config = NULL;
    pop3_result r = pop3_config_new(&config);
    if (r != POP3_OK) {
        fail_pop3(f, "config", r);
        return -1;
    }
    const char *allow = getenv("POP3_ALLOW_PLAINTEXT");
    pop3_config_set_encrypted(config, encrypted);
    pop3_config_set_allow_plaintext_credentials(config, allow != NULL && strcmp(allow, "1") == 0);
    pop3_config_set_trace(config, f->trace);
    r = pop3_client_new(config, &f->client);
    pop3_config_free(config);
    if (r != POP3_OK) {
        fail_pop3(f, "client", r);
        return -1;
    }
    return 0;
}

/* Gives the client the TLS channel binding, so that the login can use
 * SCRAM-SHA-256-PLUS when the server offers it: tls-exporter on TLS 1.3,
 * tls-server-end-point (a hash of the server's certificate) on TLS 1.2. */
static void bind_channel(struct fetch *f)
{
    unsigned char data[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    uint32_t kind = 0;
    if (SSL_version(f->ssl) >= TLS1_3_VERSION) {
        static const char label[] = "EXPORTER-Channel-Binding";
        if (SSL_export_keying_material(f->ssl, data, 32, label, sizeof label - 1, NULL, 0, 0) == 1) {
            kind = POP3_CHANNEL_BINDING_TLS_EXPORTER;
            len = 32;
        }
    } else {
        /* The client derives tls-server-end-point from the certificate
         * itself (which hash, per RFC 5929): hand it the DER bytes. */
        X509 *cert = SSL_get1_peer_certificate(f->ssl);
        unsigned char *der = NULL;
        int der_len = cert != NULL ? i2d_X509(cert, &der) : -1;
        if (der_len > 0)
            pop3_client_set_channel_binding(f->client, POP3_CHANNEL_BINDING_SERVER_CERTIFICATE,
                                            der, (size_t)der_len);
        OPENSSL_free(der);
        X509_free(cert);
    }
    /* Without a binding the login still works, without the -PLUS mechanisms. */
    if (kind != 0)
        pop3_client_set_channel_binding(f->client, kind, data, len);
}

/* Runs the handshake as far as the socket allows; when it is done, tells
 * the client (STLS) or creates it (implicit TLS). */
static void handshake(struct fetch *f, const char *password)
{
    int rc = SSL_connect(f->ssl);
    if (rc == 1) {
        f->handshaking = 0;
        f->ssl_wants_write = 0;
        if (f->client == NULL) {
            if (new_client(f, 1) == 0) {
                bind_channel(f);
                submit_start(f, password);
            }
        } else {
            pop3_result r = pop3_client_tls_established(f->client);
            if (r != POP3_OK) {
                fail_pop3(f, "TLS", r);
                return;
            }
            bind_channel(f);
            submit_login(f, password);
        }
        return;
    }
    int e = SSL_get_error(f->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        f->ssl_wants_write = 0;
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        f->ssl_wants_write = 1;
        return;
    }
    /* After STLS, the client ends the session (the login queued behind the
     * upgrade is cancelled); the first failure, this one, is reported. */
    if (f->client != NULL)
        pop3_client_tls_failed(f->client);
    long verify = SSL_get_verify_result(f->ssl);
    if (verify != X509_V_OK)
        fail(f, "TLS handshake failed: certificate rejected: %s",
             X509_verify_cert_error_string(verify));
    else
        fail(f, "TLS handshake failed: %s", tls_error());
}

int main(int argc, char **argv)
{
    struct fetch f;
    memset(&f, 0, sizeof f);
    f.fd = -1;

    if (argc != 7) {
        fprintf(stderr, "usage: fetch HOST PORT MODE USER CAFILE OUTDIR (MODE: none|starttls|implicit)\n");
        return 2;
    }
    f.host = argv[1];
    f.user = argv[4];
    f.outdir = argv[6];
    const char *auth = getenv("POP3_AUTH");
    f.auth = auth != NULL && auth[0] != '\0' ? auth : "auto";
    const char *trace = getenv("POP3_TRACE");
    f.trace = trace != NULL && strcmp(trace, "1") == 0;
    if (strcmp(argv[3], "none") == 0)
        f.mode = MODE_NONE;
    else if (strcmp(argv[3], "starttls") == 0)
        f.mode = MODE_STARTTLS;
    else if (strcmp(argv[3], "implicit") == 0)
        f.mode = MODE_IMPLICIT;
    else {
        fprintf(stderr, "fetch: unknown MODE %s (none|starttls|implicit)\n", argv[3]);
        return 2;
    }
    const char *password = getenv("POP3_PASSWORD");
    if (password == NULL) {
        fprintf(stderr, "fetch: set POP3_PASSWORD\n");
        return 2;
    }

    const char *session = getenv("POP3_SESSION_TIMEOUT");
    long long session_s = session != NULL && session[0] != '\0' ? atoll(session) : SESSION_TIMEOUT_S;
    if (session_s <= 0) {
        fprintf(stderr, "fetch: POP3_SESSION_TIMEOUT must be a positive number of seconds\n");
        return 2;
    }
    /* The session's deadline counts from before connecting. */
    long long deadline = now_ms() + session_s * 1000;

    if ((f.mode == MODE_NONE || setup_tls(&f, argv[5]) == 0) &&
        (f.fd = connect_to(&f, argv[2])) >= 0) {
        if (f.mode == MODE_IMPLICIT) {
            start_handshake(&f);
        } else if (new_client(&f, 0) == 0) {
            submit_start(&f, password);
        }
    }

    while (!f.done) {
        if (f.handshaking)
            handshake(&f, password);
        if (!f.done && !f.handshaking && f.client != NULL) {
            process(&f);
            if (f.handshaking)
                continue; /* STLS accepted: start the handshake at once */
        }
        if (f.done)
            break;
        struct pollfd p = {.fd = f.fd, .events = POLLIN};
        if (f.want_write || f.ssl_wants_write)
            p.events |= POLLOUT;
        /* Wait for the idle limit or what remains of the session, whichever
         * is shorter; checked on every turn, so a server that never pauses
         * meets the deadline too. */
        long long left = deadline - now_ms();
        if (left <= 0) {
            fail(&f, "the session ran past its overall time limit");
            break;
        }
        int wait = left < IDLE_TIMEOUT_MS ? (int)left : IDLE_TIMEOUT_MS;
        int n = poll(&p, 1, wait);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail(&f, "poll failed: %s", strerror(errno));
            break;
        }
        if (n == 0) {
            fail(&f, wait < IDLE_TIMEOUT_MS ? "the session ran past its overall time limit"
                                            : "timed out waiting for the server");
            break;
        }
        if (!f.handshaking && (p.revents & (POLLIN | POLLHUP | POLLERR)))
            read_some(&f);
    }

    discard_file(&f);
    int ok = f.error[0] == '\0' && f.stat_known && f.retrieved == f.count;
    if (f.error[0] == '\0' && !ok)
        snprintf(f.error, sizeof f.error, "retrieved %u of %u messages", f.retrieved, f.count);
    pop3_client_free(f.client);
    free(f.retr);
    if (f.ssl != NULL) {
        if (ok)
            SSL_shutdown(f.ssl);
        SSL_free(f.ssl);
    }
    SSL_CTX_free(f.ctx);
    if (f.fd >= 0)
        close(f.fd);
    if (!ok) {
        print_safe("fetch: ", f.error);
        return 1;
    }
    return 0;
}
