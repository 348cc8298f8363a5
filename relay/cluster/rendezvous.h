#pragma once
// Which shard owns a key (an event's client id or ordering key, spec section 7 "Ingest"):
// rendezvous, or highest-random-weight, hashing. Each live shard gets the weight
// hash(key, shard name) and the heaviest owns the key. Every shard computes the same owner from
// the same live set, with no table to agree on, and when a shard leaves only its own keys move
// (each to the next heaviest), when one joins only the keys it now wins move to it.
//
// The weight must be the same on every shard, in every build and on every platform, for as long
// as a key may be in flight: std::hash is none of that. It is 64-bit FNV-1a over the key's
// bytes, one 0x00 byte and the shard name's bytes, then MurmurHash3's fmix64 finalizer. FNV-1a
// alone mixes its last bytes poorly into the high bits, which decide the comparison; the
// finalizer spreads every input bit over the whole word. Both are public, short and fixed (see
// the constants in rendezvous.cpp), so an operator's script can tell where a key lives; the
// hash need not be cryptographic: a producer who crafts keys to pile them onto one shard only
// slows its own events. The key's part of the FNV state is computed once per owner() call.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace relay::cluster {

// The weight of (key, shard); exposed for tests and for the docs' reproducible example.
std::uint64_t rendezvous_weight(std::string_view key, std::string_view shard);

// The owner of `key` among `shards` (names); empty when `shards` is empty. Equal weights (never
// seen in practice) go to the smaller name, so the answer does not depend on the list's order.
std::string owner(std::string_view key, const std::vector<std::string>& shards);

}  // namespace relay::cluster
