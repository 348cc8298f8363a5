#include "relay/delivery/attempt_classification.h"

namespace relay {

AttemptOutcome classify_status(long status) {
  if (status >= 200 && status < 300) return AttemptOutcome::success;
  if (status >= 400 && status < 500) return AttemptOutcome::http_4xx;
  if (status >= 500 && status < 600) return AttemptOutcome::http_5xx;
  return AttemptOutcome::other;
}

AttemptOutcome classify_curl_error(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return AttemptOutcome::timeout;
    case CURLE_COULDNT_RESOLVE_HOST:
      return AttemptOutcome::dns_error;
    case CURLE_COULDNT_CONNECT:
      return AttemptOutcome::connect_error;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
      return AttemptOutcome::tls_error;
    default:
      return AttemptOutcome::other;
  }
}

AttemptClassification classify_attempt(const TransferReport& report) {
  AttemptClassification c;
  const long status = report.http_status;
  // A body cut off at our cap still had its status: the subscriber answered.
  if (status > 0 && (report.result == CURLE_OK ||
                     (report.result == CURLE_WRITE_ERROR && report.body_over_cap))) {
    c.outcome = classify_status(status);
    if (c.outcome == AttemptOutcome::other) {
      c.error = "unexpected HTTP status " + std::to_string(status) +
                (status >= 300 && status < 400 ? " (redirects are not followed)" : "");
    }
    return c;
  }
  // The guard refusing every address is what makes curl report that it could not connect.
  if (!report.blocked_reason.empty() && report.result == CURLE_COULDNT_CONNECT) {
    c.outcome = AttemptOutcome::blocked_destination;
    c.error = "destination refused: " + std::string(report.blocked_reason);
    return c;
  }
  c.outcome = classify_curl_error(report.result);
  c.error = !report.curl_error.empty() ? std::string(report.curl_error)
                                       : std::string(curl_easy_strerror(report.result));
  return c;
}

}  // namespace relay
