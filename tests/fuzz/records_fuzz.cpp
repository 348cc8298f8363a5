// Fuzz target: decoding arbitrary bytes as stored records (a damaged or foreign database).
// Properties: no crash, no exception and no allocation beyond the input's size (ASan); a record
// that decodes re-encodes to one that decodes to the same value (compared by its encoding, which
// holds every field).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "storage/records.h"
#include "tests/fuzz/fuzz_check.h"

using relay::fuzz::check;

namespace {

template <typename Decode>
void round_trip(std::string_view bytes, Decode decode) {
  const auto value = decode(bytes);
  if (!value) return;
  const std::string encoded = relay::records::encode_record(*value);
  const auto again = decode(encoded);
  check(again.has_value(), "a decoded record re-encodes");
  check(relay::records::encode_record(*again) == encoded, "a decoded record round-trips");
}

std::optional<relay::EventTypeStats> decode_event_type_stats(std::string_view bytes) {
  auto stats = relay::records::decode_event_type_stats("type", bytes);
  if (stats) check(stats->type == "type", "the type is the key");
  return stats;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  round_trip(bytes, relay::records::decode_event);
  round_trip(bytes, relay::records::decode_delivery);
  round_trip(bytes, relay::records::decode_subscription);
  round_trip(bytes, relay::records::decode_attempt);
  round_trip(bytes, decode_event_type_stats);
  return 0;
}
