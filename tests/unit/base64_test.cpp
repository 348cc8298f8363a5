#include "relay/core/base64.h"

#include <gtest/gtest.h>

#include <string>

namespace relay {
namespace base64_test {

using namespace std::string_literals;

TEST(Base64, EncodesWithPadding) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("\0\xff\xfe"s), "AP/+");
}

TEST(Base64, EveryByteValueRoundTrips) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  for (std::size_t length = 0; length <= bytes.size(); length += 37) {
    const std::string part = bytes.substr(0, length);
    EXPECT_EQ(base64_decode_canonical(base64_encode(part)), part) << length;
  }
}

TEST(Base64, OnlyTheCanonicalSpellingDecodes) {
  EXPECT_EQ(base64_decode_canonical("Zm9v"), "foo");
  EXPECT_EQ(base64_decode_canonical("Zg=="), "f");
  EXPECT_EQ(base64_decode_canonical(""), "");
  for (const char* text : {"Zg", "Zg=", "Zh==", "Zm9v\n", "Zm 9v", "Z===", "=Zm9", "Zm9v====", "Zm8*", "Zm-_"}) {
    EXPECT_FALSE(base64_decode_canonical(text).has_value()) << text;
  }
}

}  // namespace base64_test
}  // namespace relay
