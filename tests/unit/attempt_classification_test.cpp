#include "relay/delivery/attempt_classification.h"

#include <gtest/gtest.h>

#include <string>

namespace relay {
namespace attempt_classification_test {

// (GCC 12 flags designated initializers that skip members.)

// A transfer that got a complete response with `status`.
TransferReport answered(long status) {
  TransferReport report;
  report.http_status = status;
  return report;
}

// A transfer that ended with `result` after receiving `status` (0: none).
TransferReport ended(CURLcode result, long status = 0, std::string_view curl_error = {}) {
  TransferReport report;
  report.result = result;
  report.http_status = status;
  report.curl_error = curl_error;
  return report;
}

// A transfer that ended without a response.
TransferReport failed(CURLcode result, std::string_view curl_error = {}) { return ended(result, 0, curl_error); }

// A transfer that ended with `result` after the guard refused an address of the host.
TransferReport refused(CURLcode result, std::string_view reason, long status = 0) {
  TransferReport report = ended(result, status);
  report.blocked_reason = reason;
  return report;
}

TEST(AttemptClassification, TwoHundredsAreSuccessWithoutError) {
  for (long status : {200L, 201L, 204L, 299L}) {
    const AttemptClassification c = classify_attempt(answered(status));
    EXPECT_EQ(c.outcome, AttemptOutcome::success) << status;
    EXPECT_EQ(c.error, "") << status;
  }
}

TEST(AttemptClassification, FourHundredsAreHttp4xxWithoutError) {
  for (long status : {400L, 404L, 410L, 429L, 499L}) {
    const AttemptClassification c = classify_attempt(answered(status));
    EXPECT_EQ(c.outcome, AttemptOutcome::http_4xx) << status;
    EXPECT_EQ(c.error, "") << status;
  }
}

TEST(AttemptClassification, FiveHundredsAreHttp5xxWithoutError) {
  for (long status : {500L, 502L, 503L, 599L}) {
    const AttemptClassification c = classify_attempt(answered(status));
    EXPECT_EQ(c.outcome, AttemptOutcome::http_5xx) << status;
    EXPECT_EQ(c.error, "") << status;
  }
}

TEST(AttemptClassification, RedirectsAreOtherBecauseTheyAreNotFollowed) {
  for (long status : {301L, 302L, 307L, 308L}) {
    const AttemptClassification c = classify_attempt(answered(status));
    EXPECT_EQ(c.outcome, AttemptOutcome::other) << status;
    EXPECT_EQ(c.error, "unexpected HTTP status " + std::to_string(status) +
                           " (redirects are not followed)");
  }
}

TEST(AttemptClassification, InformationalAndNonsenseStatusesAreOther) {
  for (long status : {100L, 199L, 600L, 999L}) {
    const AttemptClassification c = classify_attempt(answered(status));
    EXPECT_EQ(c.outcome, AttemptOutcome::other) << status;
    EXPECT_EQ(c.error, "unexpected HTTP status " + std::to_string(status));
  }
}

TEST(AttemptClassification, BodyCutOffAtTheCapKeepsTheStatusOutcome) {
  TransferReport report = ended(CURLE_WRITE_ERROR, 200);
  report.body_over_cap = true;
  EXPECT_EQ(classify_attempt(report).outcome, AttemptOutcome::success);
  report.http_status = 503;
  EXPECT_EQ(classify_attempt(report).outcome, AttemptOutcome::http_5xx);
}

TEST(AttemptClassification, WriteErrorOfOurOwnWithoutTheCapIsOtherDespiteTheStatus) {
  const AttemptClassification c = classify_attempt(ended(CURLE_WRITE_ERROR, 200, "Failure writing output"));
  EXPECT_EQ(c.outcome, AttemptOutcome::other);
  EXPECT_EQ(c.error, "Failure writing output");
}

TEST(AttemptClassification, StatusThenTransportFailureIsTheTransportFailure) {
  // The status line arrived, then the connection broke or the timeout struck mid-body.
  EXPECT_EQ(classify_attempt(ended(CURLE_OPERATION_TIMEDOUT, 200)).outcome, AttemptOutcome::timeout);
  EXPECT_EQ(classify_attempt(ended(CURLE_RECV_ERROR, 500)).outcome, AttemptOutcome::other);
}

TEST(AttemptClassification, TimeoutIsTimeout) {
  const AttemptClassification c =
      classify_attempt(failed(CURLE_OPERATION_TIMEDOUT, "Operation timed out after 100 ms"));
  EXPECT_EQ(c.outcome, AttemptOutcome::timeout);
  EXPECT_EQ(c.error, "Operation timed out after 100 ms");
}

TEST(AttemptClassification, RefusedConnectionIsConnectError) {
  EXPECT_EQ(classify_attempt(failed(CURLE_COULDNT_CONNECT)).outcome,
            AttemptOutcome::connect_error);
}

TEST(AttemptClassification, UnresolvableHostIsDnsError) {
  EXPECT_EQ(classify_attempt(failed(CURLE_COULDNT_RESOLVE_HOST)).outcome,
            AttemptOutcome::dns_error);
}

TEST(AttemptClassification, EveryTlsFailureIsTlsError) {
  for (CURLcode code :
       {CURLE_SSL_CONNECT_ERROR, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED,
        CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER, CURLE_PEER_FAILED_VERIFICATION,
        CURLE_USE_SSL_FAILED, CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_CACERT_BADFILE,
        CURLE_SSL_SHUTDOWN_FAILED, CURLE_SSL_CRL_BADFILE, CURLE_SSL_ISSUER_ERROR,
        CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CLIENTCERT}) {
    EXPECT_EQ(classify_attempt(failed(code)).outcome, AttemptOutcome::tls_error) << code;
  }
}

TEST(AttemptClassification, GuardRefusalIsBlockedDestinationWithItsReason) {
  const AttemptClassification c =
      classify_attempt(refused(CURLE_COULDNT_CONNECT, "127.0.0.1 is a loopback address"));
  EXPECT_EQ(c.outcome, AttemptOutcome::blocked_destination);
  EXPECT_EQ(c.error, "destination refused: 127.0.0.1 is a loopback address");
}

TEST(AttemptClassification, GuardRefusalFollowedByAnotherFailureIsThatFailure) {
  // curl went on to an allowed address of the host, which then timed out.
  const AttemptClassification c =
      classify_attempt(refused(CURLE_OPERATION_TIMEDOUT, "::1 is a loopback address"));
  EXPECT_EQ(c.outcome, AttemptOutcome::timeout);
}

TEST(AttemptClassification, AnswerFromAnAllowedAddressWinsOverAnEarlierRefusal) {
  EXPECT_EQ(classify_attempt(refused(CURLE_OK, "::1 is a loopback address", 204)).outcome,
            AttemptOutcome::success);
}

TEST(AttemptClassification, OtherTransportFailuresAreOther) {
  for (CURLcode code : {CURLE_GOT_NOTHING, CURLE_RECV_ERROR, CURLE_SEND_ERROR,
                        CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT, CURLE_HTTP2}) {
    EXPECT_EQ(classify_attempt(failed(code)).outcome, AttemptOutcome::other) << code;
  }
}

TEST(AttemptClassification, ErrorTextIsCurlsBufferElseItsDescriptionOfTheCode) {
  EXPECT_EQ(classify_attempt(failed(CURLE_GOT_NOTHING, "Empty reply from server")).error,
            "Empty reply from server");
  EXPECT_EQ(classify_attempt(failed(CURLE_GOT_NOTHING)).error,
            curl_easy_strerror(CURLE_GOT_NOTHING));
  EXPECT_FALSE(classify_attempt(failed(CURLE_GOT_NOTHING)).error.empty());
}

}  // namespace attempt_classification_test
}  // namespace relay
