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
}
export class CancelledError extends Pop3Error { code: "ERR_POP3_CANCELLED" }
export class TlsError extends Pop3Error { code: "ERR_POP3_TLS" }
export class ConnectionError extends Pop3Error { code: "ERR_POP3_CONNECTION" }
export class TimeoutError extends Pop3Error { code: "ERR_POP3_TIMEOUT" }
