#include "relay/cluster/rendezvous.h"

namespace relay::cluster {

namespace {

// FNV-1a, 64 bits (http://www.isthe.com/chongo/tech/comp/fnv/).
constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ULL;

std::uint64_t fnv1a(std::uint64_t state, std::string_view bytes) {
  for (const char c : bytes) {
    state ^= static_cast<unsigned char>(c);
    state *= kFnvPrime;
  }
  return state;
}

// MurmurHash3's 64-bit finalizer (fmix64).
std::uint64_t fmix64(std::uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// The FNV state after the key and its separator, shared by every shard's weight.
std::uint64_t key_state(std::string_view key) { return fnv1a(fnv1a(kFnvOffset, key), std::string_view("\0", 1)); }

std::uint64_t weight_from(std::uint64_t state, std::string_view shard) { return fmix64(fnv1a(state, shard)); }

}  // namespace

std::uint64_t rendezvous_weight(std::string_view key, std::string_view shard) {
  return weight_from(key_state(key), shard);
}

std::string owner(std::string_view key, const std::vector<std::string>& shards) {
  const std::uint64_t state = key_state(key);
  const std::string* best = nullptr;
  std::uint64_t best_weight = 0;
  for (const auto& shard : shards) {
    const std::uint64_t w = weight_from(state, shard);
    if (best == nullptr || w > best_weight || (w == best_weight && shard < *best)) {
      best = &shard;
      best_weight = w;
    }
  }
  return best == nullptr ? std::string() : *best;
}

}  // namespace relay::cluster
