#include "relay/delivery/signature.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace relay {
namespace signature_test {

// Standard Webhooks' published example (README of standard-webhooks/standard-webhooks).
constexpr const char* kVectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr const char* kVectorId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr std::int64_t kVectorTimestamp = 1614265330;
constexpr const char* kVectorBody = R"({"test": 2432232314})";
constexpr const char* kVectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

// Compact JSON as relay sends it, shaped like a meeting-bot platform's "meeting completed" payload.
constexpr const char* kMeetingCompleted =
    R"({"event":"meeting.completed","data":{"bot_id":"123e4567-e89b-12d3-a456-426614174000",)"
    R"("mp4":"https://example.com/recordings/abc.mp4?X-Amz-Signature=1a2b&token=x y",)"
    R"("speakers":["Zoë Müller","李雷"],"transcript":[{"speaker":"Zoë Müller","offset":1.5,)"
    R"("words":[{"start":1.5,"end":1.9,"word":"Let's"},{"start":2.0,"end":2.3,"word":"start"}]}]}})";
constexpr const char* kCalendarSync =
    R"({"event":"calendar.sync_events","data":{"calendar_id":"123e4567-e89b-12d3-a456-426614174000",)"
    R"("last_updated_ts":"2023-05-01T12:00:00Z","affected_event_uuids":)"
    R"(["123e4567-e89b-12d3-a456-426614174001","123e4567-e89b-12d3-a456-426614174002"]}})";

// One attempt's headers, through the signer the scheduler uses.
void append_signature_headers(const Subscription& sub, std::string_view event_id, std::int64_t timestamp_s,
                              std::string_view body, UnixMillis now, HeaderList& out) {
  SubscriptionSigner(sub).append_headers(event_id, timestamp_s, body, now, out);
}

// The signature one secret gives alone (no rotation), or "" when it signs nothing.
std::string standard_signature(std::string_view secret, std::string_view id, std::int64_t timestamp_s,
                               std::string_view body) {
  Subscription sub;
  sub.secret = std::string(secret);
  HeaderList headers;
  append_signature_headers(sub, id, timestamp_s, body, 0, headers);
  return headers.empty() ? std::string() : headers.front().second;
}

std::string hmac_sha256_hex(std::string_view secret, std::string_view body) {
  Subscription sub;
  sub.secret = std::string(secret);
  sub.signature_scheme = SignatureScheme::hmac_sha256_hex;
  HeaderList headers;
  append_signature_headers(sub, "", 0, body, 0, headers);
  return headers.empty() ? std::string() : headers.front().second;
}

Subscription standard_subscription(std::string secret) {
  Subscription sub;
  sub.id = "sub_test";
  sub.secret = std::move(secret);
  return sub;
}

std::vector<std::string> header_names(const HeaderList& headers) {
  std::vector<std::string> names;
  for (const auto& [name, value] : headers) names.push_back(name);
  return names;
}

// ---------------------------------------------------------------------------------------------
// The independent verifier: tests/unit/verify_standard_webhook.py run by python3.

std::string shell_quote(const std::string& arg) {
  std::string quoted = "'";
  for (char c : arg) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

// A body written to a file of its own, so that the verifier sees exactly these bytes.
class BodyFile {
 public:
  explicit BodyFile(const std::string& body) {
    std::string pattern = ::testing::TempDir() + "relay_signature_body_XXXXXX";
    const int fd = ::mkstemp(pattern.data());
    EXPECT_GE(fd, 0);
    if (fd >= 0) ::close(fd);
    path_ = pattern;
    std::ofstream(path_, std::ios::binary) << body;
  }
  ~BodyFile() { std::remove(path_.c_str()); }
  BodyFile(const BodyFile&) = delete;
  BodyFile& operator=(const BodyFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The verifier's exit code: 0 valid, 1 invalid, 2 usage error; -1 when it could not run.
int run_verifier(const std::vector<std::string>& args, const std::string& body) {
  const BodyFile file(body);
  std::string command = "python3 " + shell_quote(std::string(RELAY_SOURCE_DIR) + "/tests/unit/verify_standard_webhook.py");
  for (const std::string& arg : args) command += " " + shell_quote(arg);
  command += " " + shell_quote(file.path());
  const int status = std::system(command.c_str());
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

int verify_standard(const std::string& secret, const std::string& id, std::int64_t ts, const std::string& header,
                    const std::string& body) {
  return run_verifier({"standard", secret, id, std::to_string(ts), header}, body);
}

int verify_hex(const std::string& secret, const std::string& header, const std::string& body) {
  return run_verifier({"hex", secret, header}, body);
}

// ---------------------------------------------------------------------------------------------

TEST(SignatureTest, MatchesStandardWebhooksPublishedVector) {
  EXPECT_EQ(standard_signature(kVectorSecret, kVectorId, kVectorTimestamp, kVectorBody), kVectorSignature);
}

TEST(SignatureTest, GeneratedSecretIsWhsecBase64OfThirtyTwoRandomBytes) {
  const std::string first = generate_secret();
  const std::string second = generate_secret();
  EXPECT_TRUE(first.starts_with("whsec_"));
  EXPECT_EQ(first.size(), 6u + 44u);
  const std::optional<std::string> key = secret_key_bytes(first);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->size(), 32u);
  EXPECT_NE(first, second);
}

TEST(SignatureTest, SecretKeyBytesDecodesWhsecAndKeepsRawSecrets) {
  EXPECT_EQ(secret_key_bytes("whsec_bXlzZWNyZXQ="), "mysecret");  // padded base64
  EXPECT_EQ(secret_key_bytes("whsec_TWFu"), "Man");
  EXPECT_EQ(secret_key_bytes("mysecret"), "mysecret");
  EXPECT_EQ(secret_key_bytes("WHSEC_TWFu"), "WHSEC_TWFu");  // the prefix is case-sensitive
}

TEST(SignatureTest, SecretKeyBytesRejectsBadBase64AndEmptyKeys) {
  for (const char* bad : {"whsec_", "whsec_TWF", "whsec_T=Q=", "whsec_TW-u", "whsec_ TWFu", "whsec_TWFu\n",
                          "whsec_====", "whsec_TR==", ""}) {
    EXPECT_EQ(secret_key_bytes(bad), std::nullopt) << bad;
  }
}

TEST(SignatureTest, RawSecretSignsWithItsOwnBytes) {
  // "bXlzZWNyZXQ=" is base64("mysecret"): both spellings name the same key.
  const std::string raw = standard_signature("mysecret", kVectorId, kVectorTimestamp, kVectorBody);
  EXPECT_TRUE(raw.starts_with("v1,"));
  EXPECT_EQ(raw, standard_signature("whsec_bXlzZWNyZXQ=", kVectorId, kVectorTimestamp, kVectorBody));
  EXPECT_NE(raw, standard_signature(kVectorSecret, kVectorId, kVectorTimestamp, kVectorBody));
}

TEST(SignatureTest, EverySignedPartChangesTheSignature) {
  const std::string base = standard_signature(kVectorSecret, kVectorId, kVectorTimestamp, kVectorBody);
  EXPECT_NE(base, standard_signature(kVectorSecret, "msg_other", kVectorTimestamp, kVectorBody));
  EXPECT_NE(base, standard_signature(kVectorSecret, kVectorId, kVectorTimestamp + 1, kVectorBody));
  EXPECT_NE(base, standard_signature(kVectorSecret, kVectorId, kVectorTimestamp, R"({"test": 2432232315})"));
}

TEST(SignatureTest, HexMatchesRfc4231Vector) {
  // RFC 4231 test case 2.
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(SignatureTest, HexKeysWithTheWholeSecretIncludingPrefix) {
  EXPECT_NE(hmac_sha256_hex(kVectorSecret, kVectorBody), hmac_sha256_hex("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", kVectorBody));
}

TEST(SignatureTest, ASignerKeepsItsKeysAcrossAttempts) {
  const Subscription sub = standard_subscription(kVectorSecret);
  const SubscriptionSigner signer(sub);
  for (int attempt = 0; attempt < 3; ++attempt) {
    HeaderList headers;
    signer.append_headers(kVectorId, kVectorTimestamp, kVectorBody, 1000, headers);
    ASSERT_EQ(headers.size(), 1u);
    EXPECT_EQ(headers[0].second, kVectorSignature);
  }
  HeaderList other_body;
  signer.append_headers(kVectorId, kVectorTimestamp, R"({"test": 1})", 1000, other_body);
  ASSERT_EQ(other_body.size(), 1u);
  EXPECT_NE(other_body[0].second, kVectorSignature);
}

TEST(SignatureTest, ASignerNoLongerSignsForAChangedSecretOrScheme) {
  const Subscription sub = standard_subscription(kVectorSecret);
  const SubscriptionSigner signer(sub);
  EXPECT_TRUE(signer.signs_for(sub));
  Subscription rotated = sub;
  rotated.previous_secret = sub.secret;
  rotated.secret = generate_secret();
  EXPECT_FALSE(signer.signs_for(rotated));
  Subscription hex = sub;
  hex.signature_scheme = SignatureScheme::hmac_sha256_hex;
  EXPECT_FALSE(signer.signs_for(hex));
  Subscription described = sub;
  described.description = "not a signing field";
  EXPECT_TRUE(signer.signs_for(described));
}

TEST(SignatureTest, UnusableSecretSignsNothing) {
  EXPECT_EQ(standard_signature("whsec_!!!!", kVectorId, kVectorTimestamp, kVectorBody), "");
  HeaderList headers;
  append_signature_headers(standard_subscription("whsec_!!!!"), kVectorId, kVectorTimestamp, kVectorBody, 0, headers);
  EXPECT_TRUE(headers.empty());
}

TEST(SignatureTest, StandardSchemeSendsOneWebhookSignatureHeader) {
  HeaderList headers{{"Content-Type", "application/json"}};
  append_signature_headers(standard_subscription(kVectorSecret), kVectorId, kVectorTimestamp, kVectorBody, 1000, headers);
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[0].first, "Content-Type");  // appended, nothing replaced
  EXPECT_EQ(headers[1].first, "webhook-signature");
  EXPECT_EQ(headers[1].second, kVectorSignature);
}

TEST(SignatureTest, StandardSchemeSignsWithBothSecretsDuringRotation) {
  const std::string old_secret = "whsec_bXlzZWNyZXQ=";
  Subscription sub = standard_subscription(kVectorSecret);
  sub.previous_secret = old_secret;
  sub.previous_secret_expires_at = 50'000;
  const std::string old_signature = standard_signature(old_secret, kVectorId, kVectorTimestamp, kVectorBody);

  HeaderList during;
  append_signature_headers(sub, kVectorId, kVectorTimestamp, kVectorBody, 49'999, during);
  ASSERT_EQ(during.size(), 1u);
  EXPECT_EQ(during[0].second, std::string(kVectorSignature) + " " + old_signature);

  HeaderList at_expiry;
  append_signature_headers(sub, kVectorId, kVectorTimestamp, kVectorBody, 50'000, at_expiry);
  ASSERT_EQ(at_expiry.size(), 1u);
  EXPECT_EQ(at_expiry[0].second, kVectorSignature);
}

TEST(SignatureTest, HexSchemeSendsOnlyTheConfiguredHeader) {
  Subscription sub = standard_subscription("shared-secret");
  sub.signature_scheme = SignatureScheme::hmac_sha256_hex;
  sub.signature_header = "X-MeetingBaas-Signature";
  HeaderList headers;
  append_signature_headers(sub, kVectorId, kVectorTimestamp, kVectorBody, 0, headers);
  EXPECT_EQ(header_names(headers), std::vector<std::string>{"X-MeetingBaas-Signature"});
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0].second, hmac_sha256_hex("shared-secret", kVectorBody));

  sub.signature_header.clear();
  HeaderList defaulted;
  append_signature_headers(sub, kVectorId, kVectorTimestamp, kVectorBody, 0, defaulted);
  EXPECT_EQ(header_names(defaulted), std::vector<std::string>{"X-Webhook-Signature"});
}

// Receivers of the hex scheme compare the whole header against one value (the Flask, FastAPI and
// Express receivers of Meeting BaaS's docs): during a rotation it holds the old secret's
// signature alone, from the end of the grace period the new one's.
TEST(SignatureTest, HexSchemeSendsTheOldSecretsValueUntilTheGracePeriodEnds) {
  Subscription sub = standard_subscription("new-secret");
  sub.signature_scheme = SignatureScheme::hmac_sha256_hex;
  sub.previous_secret = "old-secret";
  sub.previous_secret_expires_at = 10;
  HeaderList during;
  append_signature_headers(sub, kVectorId, kVectorTimestamp, kVectorBody, 9, during);
  ASSERT_EQ(during.size(), 1u);
  EXPECT_EQ(during[0].first, "X-Webhook-Signature");
  EXPECT_EQ(during[0].second, hmac_sha256_hex("old-secret", kVectorBody));

  for (const UnixMillis now : {UnixMillis{10}, UnixMillis{11}}) {
    HeaderList after;
    append_signature_headers(sub, kVectorId, kVectorTimestamp, kVectorBody, now, after);
    ASSERT_EQ(after.size(), 1u);
    EXPECT_EQ(after[0].second, hmac_sha256_hex("new-secret", kVectorBody)) << now;
  }
}

TEST(SignatureVerifierTest, AcceptsThePublishedVector) {
  EXPECT_EQ(verify_standard(kVectorSecret, kVectorId, kVectorTimestamp, kVectorSignature, kVectorBody), 0);
}

TEST(SignatureVerifierTest, AcceptsRelaysStandardSignatureAndRejectsTampering) {
  const std::string secret = generate_secret();
  const std::string id = "evt_01J9Z3Q4XKQ7V2M8N5P6R7S8T9";
  const std::int64_t ts = 1'730'000'000;
  for (const std::string body : {kMeetingCompleted, kCalendarSync}) {
    HeaderList headers;
    append_signature_headers(standard_subscription(secret), id, ts, body, 0, headers);
    ASSERT_EQ(headers.size(), 1u);
    const std::string& header = headers[0].second;
    EXPECT_EQ(verify_standard(secret, id, ts, header, body), 0) << body;
    std::string tampered = body;
    tampered.back() = ' ';
    EXPECT_EQ(verify_standard(secret, id, ts, header, tampered), 1);
    EXPECT_EQ(verify_standard(secret, id, ts + 1, header, body), 1);
    EXPECT_EQ(verify_standard(generate_secret(), id, ts, header, body), 1);
  }
}

TEST(SignatureVerifierTest, AcceptsRawSecretSignature) {
  const std::string secret = "a-raw-secret with spaces & 'quotes'";
  const std::string signature = standard_signature(secret, "evt_1", 1'730'000'000, kMeetingCompleted);
  EXPECT_EQ(verify_standard(secret, "evt_1", 1'730'000'000, signature, kMeetingCompleted), 0);
  EXPECT_EQ(verify_standard("a-raw-secret", "evt_1", 1'730'000'000, signature, kMeetingCompleted), 1);
}

TEST(SignatureVerifierTest, RotationHeaderVerifiesWithEitherSecret) {
  Subscription sub = standard_subscription(generate_secret());
  sub.previous_secret = generate_secret();
  sub.previous_secret_expires_at = 2'000;
  HeaderList headers;
  append_signature_headers(sub, "evt_rot", 1'730'000'000, kMeetingCompleted, 1'000, headers);
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(verify_standard(sub.secret, "evt_rot", 1'730'000'000, headers[0].second, kMeetingCompleted), 0);
  EXPECT_EQ(verify_standard(sub.previous_secret, "evt_rot", 1'730'000'000, headers[0].second, kMeetingCompleted), 0);
  EXPECT_EQ(verify_standard(generate_secret(), "evt_rot", 1'730'000'000, headers[0].second, kMeetingCompleted), 1);
}

TEST(SignatureVerifierTest, AcceptsRelaysHexSignatureAndRejectsTampering) {
  Subscription sub = standard_subscription(generate_secret());
  sub.signature_scheme = SignatureScheme::hmac_sha256_hex;
  sub.signature_header = "X-MeetingBaas-Signature";
  sub.previous_secret = "old shared secret";
  sub.previous_secret_expires_at = 2'000;
  for (const UnixMillis now : {UnixMillis{1'000}, UnixMillis{3'000}}) {
    HeaderList headers;
    append_signature_headers(sub, "evt_hex", 1'730'000'000, kMeetingCompleted, now, headers);
    ASSERT_EQ(headers.size(), 1u);
    const std::string& header = headers[0].second;
    // The secret that signs: the old one during the grace period, the new one after it.
    const std::string& signing = now < 2'000 ? sub.previous_secret : sub.secret;
    const std::string& other = now < 2'000 ? sub.secret : sub.previous_secret;
    EXPECT_EQ(verify_hex(signing, header, kMeetingCompleted), 0) << now;
    EXPECT_EQ(verify_hex(other, header, kMeetingCompleted), 1) << now;
    EXPECT_EQ(verify_hex(signing, header, std::string(kMeetingCompleted) + "\n"), 1);
  }
}

}  // namespace signature_test
}  // namespace relay
