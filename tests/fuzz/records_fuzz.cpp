// Fuzz target: decoding arbitrary bytes as stored records (a damaged or foreign database).
// Properties: no crash and no exception; a record that decodes re-encodes to one that decodes
// to the same value.

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
  const auto again = decode(relay::records::encode_record(*value));
  check(again.has_value(), "a decoded record re-encodes");
  check(relay::to_record(*again) == relay::to_record(*value), "a decoded record round-trips");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  round_trip(bytes, relay::records::decode_event);
  round_trip(bytes, relay::records::decode_delivery);
  round_trip(bytes, relay::records::decode_subscription);
  round_trip(bytes, relay::records::decode_attempt);
  round_trip(bytes, relay::records::decode_event_type_stats);
  return 0;
}
