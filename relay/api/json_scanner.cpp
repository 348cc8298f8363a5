#include "relay/api/json_scanner.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <bit>
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
// check beyond this one. Most of a string is plain, so it is scanned 16 bytes at a time.
bool is_plain(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte >= 0x20 && byte < 0x80 && c != '"' && c != '\\';
}

// Past the plain bytes at `p`.
const char* skip_plain(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(' ');
  while (end - p >= 16) {
    const __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Compared as signed bytes, the control characters and every byte above 0x7F are below ' '.
    const __m128i not_plain = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(chunk, quote), _mm_cmpeq_epi8(chunk, backslash)),
                                           _mm_cmplt_epi8(chunk, space));
    if (const auto mask = static_cast<unsigned>(_mm_movemask_epi8(not_plain)); mask != 0) {
      return p + std::countr_zero(mask);
    }
    p += 16;
  }
#endif
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

// `p` at the first byte of a string's content that is not plain: past the closing quote, or
// nullptr when the string is not valid.
const char* skip_rest_of_string(const char* p, const char* end) {
  for (;;) {
    if (p == end) return nullptr;
    const auto byte = static_cast<unsigned char>(*p);
    if (byte == '"') return p + 1;
    if (byte == '\\') {
      p = skip_escape(p, end);
    } else if (byte >= 0x80) {
      p = skip_utf8(p, end);
    } else {
      return nullptr;  // a control character
    }
    if (p == nullptr) return nullptr;
    p = skip_plain(p, end);
  }
}

// `p` at an opening quote: past the closing one, or nullptr when the string is not valid. Most
// strings are plain up to their closing quote: that case is small, and inlined where it counts
// (g++ leaves it out of line otherwise, at 10% of the scan).
__attribute__((always_inline)) inline const char* skip_string(const char* p, const char* end) {
  p = skip_plain(p + 1, end);
  if (p != end && *p == '"') return p + 1;
  return skip_rest_of_string(p, end);
}

// `p` at the first character of a value other than a string, an array or an object: past it,
// or nullptr.
const char* skip_literal_or_number(const char* p, const char* end) {
  switch (*p) {
    case 't':
      return skip_literal(p, end, "true");
    case 'f':
      return skip_literal(p, end, "false");
    case 'n':
      return skip_literal(p, end, "null");
    default:
      return skip_number(p, end);
  }
}

}  // namespace

bool JsonScanner::consume(char c) {
  cursor_ = skip_spaces(cursor_, end_);
  if (cursor_ == end_ || *cursor_ != c) return false;
  ++cursor_;
  return true;
}

std::optional<std::string_view> JsonScanner::string() {
  cursor_ = skip_spaces(cursor_, end_);
  if (cursor_ == end_ || *cursor_ != '"') return std::nullopt;
  const char* const after = skip_string(cursor_, end_);
  if (after == nullptr) return std::nullopt;
  const std::string_view text(cursor_, after - cursor_);
  cursor_ = after;
  return text;
}

std::optional<std::string_view> JsonScanner::value(int max_depth) { return scan_value<false>(max_depth, nullptr); }

std::optional<std::string_view> JsonScanner::value(int max_depth, std::string& compact) {
  return scan_value<true>(max_depth, &compact);
}

bool JsonScanner::at_end() {
  cursor_ = skip_spaces(cursor_, end_);
  return cursor_ == end_ || *cursor_ == '\0';
}

// One loop over the tokens with an explicit stack of open containers, so that nesting costs no
// recursion. Compacting copies the runs of text between whitespace gaps: a value without
// whitespace is one copy, of exactly its size. The cursor stays in a local until the end.
template <bool kCompact>
std::optional<std::string_view> JsonScanner::scan_value(int max_depth, std::string* compact) {
  max_depth = std::min(max_depth, kDepthLimit);
  const char* const end = end_;
  const char* p = skip_spaces(cursor_, end);
  const char* const begin = p;
  // Compacting: the text before `copied_to` is in *compact, up to `out`, once there was a gap.
  const char* copied_to = begin;
  char* out = nullptr;

  // Whitespace between tokens is rare in machine-written JSON: the check is inline, the rest not.
  const auto skip_spaces_between_tokens = [&] {
    const char* const gap = p;
    p = skip_spaces(p + 1, end);
    if constexpr (kCompact) {
      // The rest of the text bounds the compact value: size the string once, trim at the end.
      if (out == nullptr) {
        compact->resize(static_cast<std::size_t>(end - begin));
        out = compact->data();
      }
      std::memcpy(out, copied_to, gap - copied_to);
      out += gap - copied_to;
      copied_to = p;
    }
  };
  // Inlined like skip_string: these run once or twice per token.
  const auto skip_gap = [&]() __attribute__((always_inline)) {
    if (p != end && is_space(*p)) [[unlikely]] skip_spaces_between_tokens();
  };
  // After '{' or ',' in an object: the member name and its colon.
  const auto skip_member_name = [&]() __attribute__((always_inline)) {
    skip_gap();
    if (p == end || *p != '"') return false;
    p = skip_string(p, end);
    if (p == nullptr) return false;
    skip_gap();
    if (p == end || *p != ':') return false;
    ++p;
    return true;
  };

  std::array<bool, kDepthLimit> in_object;  // per open container: an object, or else an array
  int depth = 0;
  for (;;) {
    skip_gap();
    if (p == end) return std::nullopt;
    const char first = *p;
    if (first == '{' || first == '[') {
      if (depth == max_depth) return std::nullopt;
      in_object[depth++] = first == '{';
      ++p;
      skip_gap();
      if (p == end) return std::nullopt;
      if (*p != (first == '{' ? '}' : ']')) {
        if (first == '{' && !skip_member_name()) return std::nullopt;
        continue;
      }
      ++p;
      --depth;
    } else {
      p = first == '"' ? skip_string(p, end) : skip_literal_or_number(p, end);
      if (p == nullptr) return std::nullopt;
    }
    // After a value: close the containers it completes, then go on to the next value.
    for (;;) {
      if (depth == 0) {
        if constexpr (kCompact) {
          if (out == nullptr) {
            compact->assign(copied_to, p);
          } else {
            std::memcpy(out, copied_to, p - copied_to);
            compact->resize(out + (p - copied_to) - compact->data());
            compact->shrink_to_fit();
          }
        }
        cursor_ = p;
        return std::string_view(begin, p - begin);
      }
      skip_gap();
      if (p == end) return std::nullopt;
      const bool object = in_object[depth - 1];
      const char next = *p++;
      if (next == ',') {
        if (object && !skip_member_name()) return std::nullopt;
        break;
      }
      if (next != (object ? '}' : ']')) return std::nullopt;
      --depth;
    }
  }
}

}  // namespace relay
