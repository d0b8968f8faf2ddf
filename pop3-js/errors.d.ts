export class Pop3Error extends Error {
  code: string;
}
export class ProtocolError extends Pop3Error { code: "ERR_POP3_PROTOCOL" }
export class ReplyError extends Pop3Error { code: "ERR_POP3_REPLY" }
export class UsageError extends Pop3Error { code: "ERR_POP3_USAGE" }
export class ServerError extends Pop3Error {
  code: "ERR_POP3_SERVER";
  /** The bracketed response code (AUTH, IN-USE, SYS/TEMP, ...), if any. */
  responseCode: string | null;
  text: string;
  tokenRefusal: string | null;
  /** The server refused the credentials (a login step, without a temporary code): retrying them unchanged will not help. */
  authenticationRefused: boolean;
  /** A code (IN-USE, LOGIN-DELAY, SYS/TEMP) saying a later attempt may succeed. */
  temporary: boolean;
}
export class CancelledError extends Pop3Error { code: "ERR_POP3_CANCELLED" }
export class TlsError extends Pop3Error { code: "ERR_POP3_TLS" }
export class ConnectionError extends Pop3Error { code: "ERR_POP3_CONNECTION" }
export class TimeoutError extends Pop3Error { code: "ERR_POP3_TIMEOUT" }
