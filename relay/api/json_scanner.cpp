#include "relay/api/json_scanner.h"

#include <algorithm>
#include <bit>
#include <bitset>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace relay {

namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool in_range(unsigned char c, unsigned char low, unsigned char high) { return c >= low && c <= high; }

const char* skip_spaces(const char* p, const char* end) {
  while (p != end && is_space(*p)) ++p;
  return p;
}

const char* skip_digits(const char* p, const char* end) {
  while (p != end && is_digit(*p)) ++p;
  return p;
}

// Inside a string, "plain" bytes are printable ASCII other than '"' and '\\': they need no
// check beyond this one. Most of a string is plain, so it is scanned a word (8 bytes) at a time.
bool is_plain(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte >= 0x20 && byte < 0x80 && c != '"' && c != '\\';
}

constexpr std::uint64_t kEachByte = 0x0101010101010101;
constexpr std::uint64_t kHighBits = 0x8080808080808080;

constexpr std::uint64_t zero_bytes(std::uint64_t word) { return (word - kEachByte) & ~word & kHighBits; }

// The high bit of each byte of `word` that is not plain (and possibly of plain bytes above the
// first one that is not: subtraction borrows upwards). Zero when all eight are plain.
constexpr std::uint64_t not_plain_bytes(std::uint64_t word) {
  const std::uint64_t control = (word - kEachByte * 0x20) & ~word & kHighBits;
  return zero_bytes(word ^ (kEachByte * '"')) | zero_bytes(word ^ (kEachByte * '\\')) | control |
         (word & kHighBits);
}

// Past the plain bytes at `p`. Stopping early is harmless (the caller looks at the byte), and on
// a little-endian machine the lowest flagged byte is exactly the first byte that is not plain.
const char* skip_plain(const char* p, const char* end) {
  while (end - p >= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, sizeof word);
    if (const std::uint64_t flagged = not_plain_bytes(word); flagged != 0) {
      const int bit = std::endian::native == std::endian::little ? std::countr_zero(flagged) : std::countl_zero(flagged);
      return p + bit / 8;
    }
    p += 8;
  }
  while (p != end && is_plain(*p)) ++p;
  return p;
}

// Four hex digits, or -1.
int hex4(const char* p) {
  int value = 0;
  for (int i = 0; i < 4; ++i) {
    const char c = p[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

bool is_high_surrogate(int unit) { return unit >= 0xD800 && unit <= 0xDBFF; }
bool is_low_surrogate(int unit) { return unit >= 0xDC00 && unit <= 0xDFFF; }

// `p` at the backslash of an escape: past the escape, or nullptr when it is not one. A \u escape
// of a high surrogate must be followed by one of a low surrogate, which cannot stand alone.
const char* skip_escape(const char* p, const char* end) {
  if (end - p < 2) return nullptr;
  switch (p[1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
      return p + 2;
    case 'u':
      break;
    default:
      return nullptr;
  }
  if (end - p < 6) return nullptr;
  const int unit = hex4(p + 2);
  if (unit < 0 || is_low_surrogate(unit)) return nullptr;
  if (!is_high_surrogate(unit)) return p + 6;
  if (end - p < 12 || p[6] != '\\' || p[7] != 'u') return nullptr;
  return is_low_surrogate(hex4(p + 8)) ? p + 12 : nullptr;
}

// `p` at a byte above 0x7F: past its UTF-8 sequence, or nullptr when the sequence is not well
// formed (Unicode table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF).
const char* skip_utf8(const char* p, const char* end) {
  const auto byte = [p](int i) { return static_cast<unsigned char>(p[i]); };
  const unsigned char lead = byte(0);
  int length = 0;
  unsigned char second_low = 0x80, second_high = 0xBF;
  if (in_range(lead, 0xC2, 0xDF)) {
    length = 2;
  } else if (in_range(lead, 0xE0, 0xEF)) {
    length = 3;
    if (lead == 0xE0) second_low = 0xA0;
    if (lead == 0xED) second_high = 0x9F;
  } else if (in_range(lead, 0xF0, 0xF4)) {
    length = 4;
    if (lead == 0xF0) second_low = 0x90;
    if (lead == 0xF4) second_high = 0x8F;
  } else {
    return nullptr;
  }
  if (end - p < length || !in_range(byte(1), second_low, second_high)) return nullptr;
  for (int i = 2; i < length; ++i) {
    if (!in_range(byte(i), 0x80, 0xBF)) return nullptr;
  }
  return p + length;
}

// 10^308 < DBL_MAX (1.797...e308) < 10^309.
constexpr std::int64_t kLargestFinitePowerOfTen = 308;
// Exponents as written are counted up to this (far beyond any that matters; no overflow).
constexpr std::int64_t kExponentCap = 1'000'000'000'000;

// `p` at the first character of a number: past it, or nullptr when it is malformed or rounds
// to infinity as a double, which nlohmann refuses ("number overflow"). Only a number within a
// factor of ten of DBL_MAX is converted to tell.
const char* skip_number(const char* p, const char* end) {
  const char* const start = p;
  if (*p == '-') ++p;
  if (p == end) return nullptr;
  const char* const integer = p;
  if (*p == '0') {
    ++p;
  } else if (is_digit(*p)) {
    p = skip_digits(p + 1, end);
  } else {
    return nullptr;
  }
  // The power of ten of the first significant digit, before the exponent; none for a zero.
  std::optional<std::int64_t> magnitude;
  if (*integer != '0') magnitude = (p - integer) - 1;
  if (p != end && *p == '.') {
    const char* const fraction = ++p;
    p = skip_digits(p, end);
    if (p == fraction) return nullptr;
    if (!magnitude) {
      const char* const significant = std::find_if(fraction, p, [](char c) { return c != '0'; });
      if (significant != p) magnitude = -((significant - fraction) + 1);
    }
  }
  std::int64_t exponent = 0;
  if (p != end && (*p == 'e' || *p == 'E')) {
    ++p;
    const bool negative = p != end && *p == '-';
    if (p != end && (*p == '-' || *p == '+')) ++p;
    const char* const digits = p;
    for (; p != end && is_digit(*p); ++p) exponent = std::min(exponent * 10 + (*p - '0'), kExponentCap);
    if (p == digits) return nullptr;
    if (negative) exponent = -exponent;
  }
  if (!magnitude || *magnitude + exponent < kLargestFinitePowerOfTen) return p;
  if (*magnitude + exponent > kLargestFinitePowerOfTen) return nullptr;
  double value = 0;
  const auto [rest, error] = std::from_chars(start, p, value);
  return error == std::errc() && rest == p && std::isfinite(value) ? p : nullptr;
}

const char* skip_literal(const char* p, const char* end, std::string_view literal) {
  if (static_cast<std::size_t>(end - p) < literal.size() || std::memcmp(p, literal.data(), literal.size()) != 0) {
    return nullptr;
  }
  return p + literal.size();
}

}  // namespace

bool JsonScanner::consume(char c) {
  skip_whitespace();
  if (cursor_ == end_ || *cursor_ != c) return false;
  ++cursor_;
  return true;
}

std::optional<std::string_view> JsonScanner::string() {
  skip_whitespace();
  const char* const begin = cursor_;
  if (cursor_ == end_ || *cursor_ != '"' || !skip_string()) return std::nullopt;
  return std::string_view(begin, cursor_ - begin);
}

std::optional<std::string_view> JsonScanner::value(int max_depth) { return scan_value<false>(max_depth, nullptr); }

std::optional<std::string_view> JsonScanner::value(int max_depth, std::string& compact) {
  return scan_value<true>(max_depth, &compact);
}

bool JsonScanner::at_end() {
  skip_whitespace();
  return cursor_ == end_ || *cursor_ == '\0';
}

void JsonScanner::skip_whitespace() { cursor_ = skip_spaces(cursor_, end_); }

// The cursor at an opening quote.
bool JsonScanner::skip_string() {
  const char* p = cursor_ + 1;
  for (;;) {
    p = skip_plain(p, end_);
    if (p == end_) return false;
    const auto byte = static_cast<unsigned char>(*p);
    if (byte == '"') {
      cursor_ = p + 1;
      return true;
    }
    if (byte == '\\') {
      p = skip_escape(p, end_);
    } else if (byte >= 0x80) {
      p = skip_utf8(p, end_);
    } else if (byte < 0x20) {
      return false;
    } else {
      ++p;
    }
    if (p == nullptr) return false;
  }
}

// The cursor at the first character of a value other than an array or object.
bool JsonScanner::skip_scalar() {
  const char* next = nullptr;
  switch (*cursor_) {
    case '"':
      return skip_string();
    case 't':
      next = skip_literal(cursor_, end_, "true");
      break;
    case 'f':
      next = skip_literal(cursor_, end_, "false");
      break;
    case 'n':
      next = skip_literal(cursor_, end_, "null");
      break;
    default:
      next = skip_number(cursor_, end_);
  }
  if (next == nullptr) return false;
  cursor_ = next;
  return true;
}

// One loop over the tokens with an explicit stack of open containers, so that nesting costs no
// recursion. Compacting copies the runs of text between whitespace gaps: a value without
// whitespace is one copy, of exactly its size.
template <bool kCompact>
std::optional<std::string_view> JsonScanner::scan_value(int max_depth, std::string* compact) {
  max_depth = std::min(max_depth, kDepthLimit);
  skip_whitespace();
  const char* const begin = cursor_;
  const char* copied_to = begin;
  bool had_gap = false;
  if constexpr (kCompact) compact->clear();

  const auto skip_gap = [&] {
    if (cursor_ == end_ || !is_space(*cursor_)) return;
    const char* const gap = cursor_;
    cursor_ = skip_spaces(cursor_ + 1, end_);
    if constexpr (kCompact) {
      // The rest of the text bounds the compact value: reserve once, trim at the end.
      if (!had_gap) compact->reserve(static_cast<std::size_t>(end_ - begin));
      compact->append(copied_to, gap);
      copied_to = cursor_;
    }
    had_gap = true;
  };
  const auto member_name = [&] {
    skip_gap();
    if (cursor_ == end_ || *cursor_ != '"' || !skip_string()) return false;
    skip_gap();
    if (cursor_ == end_ || *cursor_ != ':') return false;
    ++cursor_;
    return true;
  };

  std::bitset<kDepthLimit> in_object;  // per open container: an object, or else an array
  int depth = 0;
  for (;;) {
    skip_gap();
    if (cursor_ == end_) return std::nullopt;
    const char first = *cursor_;
    if (first == '{' || first == '[') {
      if (depth == max_depth) return std::nullopt;
      in_object[depth++] = first == '{';
      ++cursor_;
      skip_gap();
      if (cursor_ == end_) return std::nullopt;
      if (*cursor_ != (first == '{' ? '}' : ']')) {
        if (first == '{' && !member_name()) return std::nullopt;
        continue;
      }
      ++cursor_;
      --depth;
    } else if (!skip_scalar()) {
      return std::nullopt;
    }
    // After a value: close the containers it completes, then go on to the next value.
    for (;;) {
      if (depth == 0) {
        if constexpr (kCompact) {
          compact->append(copied_to, cursor_);
          if (had_gap) compact->shrink_to_fit();
        }
        return std::string_view(begin, cursor_ - begin);
      }
      skip_gap();
      if (cursor_ == end_) return std::nullopt;
      const bool object = in_object[depth - 1];
      const char next = *cursor_++;
      if (next == ',') {
        if (object && !member_name()) return std::nullopt;
        break;
      }
      if (next != (object ? '}' : ']')) return std::nullopt;
      --depth;
    }
  }
}

}  // namespace relay
