// The package's errors: each an Error subclass with a stable `code`, so that
// callers can branch on `err.code` (as on Node's own errors) or `instanceof`.

/** Base class of every error the package throws. */
export class Pop3Error extends Error {
  constructor(message, { code = "ERR_POP3", cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** The server broke the protocol; the connection is closed. */
export class ProtocolError extends Pop3Error {
  constructor(message, options = {}) {
    super(message, { code: "ERR_POP3_PROTOCOL", ...options });
  }
}

/** One reply could not be used (malformed, too long); the session goes on. */
export class ReplyError extends Pop3Error {
  constructor(message, options = {}) {
    super(message, { code: "ERR_POP3_REPLY", ...options });
  }
}

/** The caller asked for something the session does not allow now; nothing was sent. */
export class UsageError extends Pop3Error {
  constructor(message, options = {}) {
    super(message, { code: "ERR_POP3_USAGE", ...options });
  }
}

/**
 * The server answered `-ERR`. `responseCode` is the bracketed code (`AUTH`,
 * `IN-USE`, `SYS/TEMP`, ...) if any, `text` the rest, both sanitised by the core.
 * `authenticationRefused` (the credentials were refused: do not retry them
 * unchanged) and `temporary` (a later attempt may succeed) are the core's
 * verdicts.
 */
export class ServerError extends Pop3Error {
  constructor(
    text,
    { responseCode = null, tokenRefusal = null, authenticationRefused = false, temporary = false } = {},
  ) {
    super(responseCode ? `-ERR [${responseCode}] ${text}` : `-ERR ${text}`, {
      code: "ERR_POP3_SERVER",
    });
    this.responseCode = responseCode;
    this.text = text;
    this.tokenRefusal = tokenRefusal;
    this.authenticationRefused = authenticationRefused;
    this.temporary = temporary;
  }
}

/** The command was never sent: an earlier STLS or login step failed. */
export class CancelledError extends Pop3Error {
  constructor(message, options = {}) {
    super(message, { code: "ERR_POP3_CANCELLED", ...options });
  }
}

/**
 * TLS could not be set up: the handshake failed, the certificate was refused
 * (Node's error, with its own `code`, is the `cause`), or the server refused
 * or does not offer STLS.
 */
export class TlsError extends Pop3Error {
  constructor(message, options = {}) {
    super(message, { code: "ERR_POP3_TLS", ...options });
  }
}

/** The connection failed or closed under a command. */
export class ConnectionError extends Pop3Error {
  constructor(message, options = {}) {
    super(message, { code: "ERR_POP3_CONNECTION", ...options });
  }
}

/** The server sent nothing for longer than the `timeout`. */
export class TimeoutError extends Pop3Error {
  constructor(message, options = {}) {
    super(message, { code: "ERR_POP3_TIMEOUT", ...options });
  }
}
