// Signing (relay/delivery/signature.h): one HMAC-SHA256 per attempt (two during a secret
// rotation), on the event loop. Baseline: the same HMAC and base64 with an EVP_MAC fetched once
// and a context reused, which is what OpenSSL 3 recommends for repeated MACs; the gap between
// the two is relay's per-call overhead (algorithm fetch, secret decoding, allocations).

#include <benchmark/benchmark.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <string>

#include "relay/delivery/signature.h"

namespace relay {
namespace {

constexpr std::string_view kEventId = "evt_0195f3a2b4c10000abcd000000000001";
constexpr std::int64_t kTimestamp = 1'767'225'600;

std::string body_of(std::size_t bytes) { return std::string(bytes, 'x'); }

void BM_Baseline_HmacPrefetched(benchmark::State& state) {
  const std::string body = body_of(static_cast<std::size_t>(state.range(0)));
  const std::string secret = generate_secret();
  const std::string key = *secret_key_bytes(secret);
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                               OSSL_PARAM_construct_end()};
  const std::string timestamp = std::to_string(kTimestamp);
  for (auto _ : state) {
    EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params);
    for (std::string_view part : {kEventId, std::string_view("."), std::string_view(timestamp),
                                  std::string_view("."), std::string_view(body)}) {
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(part.data()), part.size());
    }
    std::array<unsigned char, 32> digest{};
    std::size_t length = 0;
    EVP_MAC_final(ctx, digest.data(), &length, digest.size());
    std::array<unsigned char, 48> encoded{};
    EVP_EncodeBlock(encoded.data(), digest.data(), static_cast<int>(digest.size()));
    std::string header = "v1," + std::string(reinterpret_cast<const char*>(encoded.data()));
    benchmark::DoNotOptimize(header);
  }
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Baseline_HmacPrefetched)->Arg(1024)->Arg(16 << 10);

void BM_StandardSignature(benchmark::State& state) {
  const std::string body = body_of(static_cast<std::size_t>(state.range(0)));
  Subscription sub;
  sub.secret = generate_secret();
  for (auto _ : state) {
    // One signature with its key set up from the secret each time: the cost without a signer.
    HeaderList headers;
    SubscriptionSigner(sub).append_headers(kEventId, kTimestamp, body, 0, headers);
    benchmark::DoNotOptimize(headers);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_StandardSignature)->Arg(1024)->Arg(16 << 10);

void BM_HmacSha256Hex(benchmark::State& state) {
  const std::string body = body_of(static_cast<std::size_t>(state.range(0)));
  Subscription sub;
  sub.secret = generate_secret();
  sub.signature_scheme = SignatureScheme::hmac_sha256_hex;
  for (auto _ : state) {
    HeaderList headers;
    SubscriptionSigner(sub).append_headers(kEventId, kTimestamp, body, 0, headers);
    benchmark::DoNotOptimize(headers);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_HmacSha256Hex)->Arg(1024);

// A subscription with a fresh secret and, while `rotating`, a previous one still signing.
Subscription signing_subscription(bool rotating) {
  Subscription sub;
  sub.secret = generate_secret();
  if (rotating) {
    sub.previous_secret = generate_secret();
    sub.previous_secret_expires_at = kTimestamp * 1000 + 86'400'000;
  }
  return sub;
}

// The per-attempt call of the scheduler; range(0) = 1 during a rotation (two signatures).
void BM_AppendSignatureHeaders(benchmark::State& state) {
  const std::string body = body_of(1024);
  const Subscription sub = signing_subscription(/*rotating=*/state.range(0) == 1);
  HeaderList headers;
  for (auto _ : state) {
    headers.clear();
    SubscriptionSigner(sub).append_headers(kEventId, kTimestamp, body, kTimestamp * 1000, headers);
    benchmark::DoNotOptimize(headers);
  }
}
BENCHMARK(BM_AppendSignatureHeaders)->ArgName("rotating")->Arg(0)->Arg(1);

// What the scheduler does per attempt: one signer per subscription, keys set up once.
void BM_SubscriptionSigner(benchmark::State& state) {
  const std::string body = body_of(1024);
  const Subscription sub = signing_subscription(/*rotating=*/state.range(0) == 1);
  const SubscriptionSigner signer(sub);
  HeaderList headers;
  for (auto _ : state) {
    headers.clear();
    signer.append_headers(kEventId, kTimestamp, body, kTimestamp * 1000, headers);
    benchmark::DoNotOptimize(headers);
  }
}
BENCHMARK(BM_SubscriptionSigner)->ArgName("rotating")->Arg(0)->Arg(1);

void BM_SecretKeyBytes(benchmark::State& state) {
  const std::string secret = generate_secret();
  for (auto _ : state) {
    auto key = secret_key_bytes(secret);
    benchmark::DoNotOptimize(key);
  }
}
BENCHMARK(BM_SecretKeyBytes);

}  // namespace
}  // namespace relay
