// Fuzz target: keys::parse_id and the functions that take ids from URLs and cursors. Properties:
// no crash; an accepted id formats back to the same text, and its time is its first 6 bytes.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "storage/keys.h"
#include "tests/fuzz/fuzz_check.h"

using relay::fuzz::check;

namespace {

void parse_as(std::string_view text, std::string_view prefix) {
  const auto raw = relay::keys::parse_id(text, prefix);
  if (!raw) return;
  const std::string_view bytes(raw->data(), raw->size());
  check(relay::keys::format_id(prefix, bytes) == text, "format_id(parse_id(x)) == x");
  check(relay::keys::raw(text) == bytes, "raw() agrees with parse_id");
  check(relay::keys::id_time(text) == static_cast<relay::UnixMillis>(relay::keys::read_u64(bytes) >> 16),
        "id_time is the first 6 bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (std::string_view prefix : {relay::keys::kEventPrefix, relay::keys::kSubscriptionPrefix,
                                  relay::keys::kDeliveryPrefix}) {
    parse_as(text, prefix);
  }
  // Whatever precedes the first '_' as the prefix, as id_time() does.
  if (const auto underscore = text.find('_'); underscore != std::string_view::npos) {
    parse_as(text, text.substr(0, underscore + 1));
  }
  (void)relay::keys::id_time(text);
  (void)relay::keys::raw(text);
  (void)relay::keys::event_key(text);
  return 0;
}
