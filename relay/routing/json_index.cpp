#include "relay/routing/json_index.h"

#include <algorithm>

namespace relay {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Yields the decoded UTF-8 bytes of an escaped JSON string's content, one at a time. Malformed
// escapes (which validated text never holds) decode to U+FFFD rather than failing.
class Decoder {
 public:
  explicit Decoder(std::string_view raw) : p_(raw.data()), end_(raw.data() + raw.size()) {}

  bool next(unsigned char& out) {
    if (pending_ < pending_size_) {
      out = pending_bytes_[pending_++];
      return true;
    }
    if (p_ == end_) return false;
    const char c = *p_++;
    if (c != '\\' || p_ == end_) {
      out = static_cast<unsigned char>(c);
      return true;
    }
    const char e = *p_++;
    switch (e) {
      case 'b': out = '\b'; return true;
      case 'f': out = '\f'; return true;
      case 'n': out = '\n'; return true;
      case 'r': out = '\r'; return true;
      case 't': out = '\t'; return true;
      case 'u': break;
      default: out = static_cast<unsigned char>(e); return true;  // " \ /
    }
    std::uint32_t cp = read_hex4();
    if (cp >= 0xD800 && cp <= 0xDBFF && end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
      const char* save = p_;
      p_ += 2;
      const std::uint32_t low = read_hex4();
      if (low >= 0xDC00 && low <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
      } else {
        p_ = save;
        cp = 0xFFFD;
      }
    } else if (cp >= 0xD800 && cp <= 0xDFFF) {
      cp = 0xFFFD;
    }
    encode(cp);
    out = pending_bytes_[pending_++];
    return true;
  }

 private:
  std::uint32_t read_hex4() {
    if (end_ - p_ < 4) {  // cut short: one byte, so that nothing decodes longer than its text
      p_ = end_;
      return '?';
    }
    std::uint32_t cp = 0;
    for (int i = 0; i < 4; ++i) {
      const int v = hex_value(p_[i]);
      if (v < 0) {
        p_ += 4;
        return 0xFFFD;
      }
      cp = cp << 4 | static_cast<std::uint32_t>(v);
    }
    p_ += 4;
    return cp;
  }

  void encode(std::uint32_t cp) {
    pending_ = 0;
    if (cp < 0x80) {
      pending_bytes_[0] = static_cast<unsigned char>(cp);
      pending_size_ = 1;
    } else if (cp < 0x800) {
      pending_bytes_[0] = static_cast<unsigned char>(0xC0 | cp >> 6);
      pending_bytes_[1] = static_cast<unsigned char>(0x80 | (cp & 0x3F));
      pending_size_ = 2;
    } else if (cp < 0x10000) {
      pending_bytes_[0] = static_cast<unsigned char>(0xE0 | cp >> 12);
      pending_bytes_[1] = static_cast<unsigned char>(0x80 | (cp >> 6 & 0x3F));
      pending_bytes_[2] = static_cast<unsigned char>(0x80 | (cp & 0x3F));
      pending_size_ = 3;
    } else {
      pending_bytes_[0] = static_cast<unsigned char>(0xF0 | cp >> 18);
      pending_bytes_[1] = static_cast<unsigned char>(0x80 | (cp >> 12 & 0x3F));
      pending_bytes_[2] = static_cast<unsigned char>(0x80 | (cp >> 6 & 0x3F));
      pending_bytes_[3] = static_cast<unsigned char>(0x80 | (cp & 0x3F));
      pending_size_ = 4;
    }
  }

  const char* p_;
  const char* end_;
  unsigned char pending_bytes_[4] = {};
  int pending_ = 0;
  int pending_size_ = 0;
};

std::strong_ordering plain_compare(std::string_view a, std::string_view b) {
  const int c = a.compare(b);  // char_traits<char>::compare orders bytes as unsigned, like memcmp
  return c < 0 ? std::strong_ordering::less : c > 0 ? std::strong_ordering::greater : std::strong_ordering::equal;
}

}  // namespace

std::strong_ordering JsonString::compare(std::string_view plain) const {
  if (!escaped) return plain_compare(raw, plain);
  Decoder decoder(raw);
  std::size_t i = 0;
  unsigned char c;
  while (decoder.next(c)) {
    if (i == plain.size()) return std::strong_ordering::greater;
    const auto p = static_cast<unsigned char>(plain[i++]);
    if (c != p) return c < p ? std::strong_ordering::less : std::strong_ordering::greater;
  }
  return i == plain.size() ? std::strong_ordering::equal : std::strong_ordering::less;
}

bool JsonString::equals(std::string_view plain) const {
  if (!escaped) return raw == plain;
  if (raw.size() < plain.size()) return false;  // an escape never decodes to more bytes than it takes
  return compare(plain) == 0;
}

bool JsonString::starts_with(std::string_view plain) const {
  if (!escaped) return raw.starts_with(plain);
  Decoder decoder(raw);
  unsigned char c;
  for (const char p : plain) {
    if (!decoder.next(c) || c != static_cast<unsigned char>(p)) return false;
  }
  return true;
}

bool JsonIndex::build(std::string_view text) {
  nodes_.clear();
  text_ = text;
  pos_ = 0;
  if (text.size() >= npos) return false;
  // Compact JSON spends at least ~8 bytes per value on average in realistic payloads.
  nodes_.reserve(text.size() / 8 + 8);
  const bool ok = parse_value(0) && (skip_space(), pos_ == text_.size());
  if (!ok) nodes_.clear();
  return ok;
}

std::string_view JsonIndex::number_text(std::uint32_t node) const {
  return text_.substr(nodes_[node].begin, nodes_[node].length);
}

JsonString JsonIndex::string(std::uint32_t node) const {
  return JsonString{text_.substr(nodes_[node].begin, nodes_[node].length), nodes_[node].escaped};
}

std::uint32_t JsonIndex::member(std::uint32_t object, std::string_view key) const {
  const Node& o = nodes_[object];
  if (o.kind != Kind::object) return npos;
  std::uint32_t found = npos;
  std::uint32_t name = object + 1;
  for (std::uint32_t i = 0; i < o.count; ++i) {
    if (string(name).equals(key)) found = name + 1;
    name = nodes_[name + 1].next;
  }
  return found;
}

std::uint32_t JsonIndex::element(std::uint32_t array, std::uint32_t index) const {
  const Node& a = nodes_[array];
  if (a.kind != Kind::array || index >= a.count) return npos;
  std::uint32_t node = array + 1;
  for (std::uint32_t i = 0; i < index; ++i) node = nodes_[node].next;
  return node;
}

std::uint32_t JsonIndex::push(Kind kind, std::uint32_t begin) {
  Node node;
  node.kind = kind;
  node.begin = begin;
  nodes_.push_back(node);
  return static_cast<std::uint32_t>(nodes_.size() - 1);
}

void JsonIndex::skip_space() {
  while (pos_ < text_.size() &&
         (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' || text_[pos_] == '\t')) {
    ++pos_;
  }
}

bool JsonIndex::parse_value(int depth) {
  skip_space();
  if (pos_ >= text_.size()) return false;
  const char c = text_[pos_];
  if (c == '"') return parse_string();
  if (c == 't') return parse_literal("true", Kind::boolean_true);
  if (c == 'f') return parse_literal("false", Kind::boolean_false);
  if (c == 'n') return parse_literal("null", Kind::null);
  if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
  if (c != '{' && c != '[') return false;
  if (depth >= kMaxDepth) return false;

  const bool object = c == '{';
  const char close = object ? '}' : ']';
  const std::uint32_t self = push(object ? Kind::object : Kind::array, static_cast<std::uint32_t>(pos_));
  ++pos_;
  skip_space();
  std::uint32_t count = 0;
  if (pos_ < text_.size() && text_[pos_] == close) {
    ++pos_;
  } else {
    while (true) {
      if (object) {
        skip_space();
        if (pos_ >= text_.size() || text_[pos_] != '"' || !parse_string()) return false;
        skip_space();
        if (pos_ >= text_.size() || text_[pos_] != ':') return false;
        ++pos_;
      }
      if (!parse_value(depth + 1)) return false;
      ++count;
      skip_space();
      if (pos_ >= text_.size()) return false;
      if (text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (text_[pos_] != close) return false;
      ++pos_;
      break;
    }
  }
  nodes_[self].count = count;
  nodes_[self].next = static_cast<std::uint32_t>(nodes_.size());
  return true;
}

bool JsonIndex::parse_string() {
  const std::size_t begin = pos_ + 1;
  std::size_t i = begin;
  bool escaped = false;
  while (i < text_.size() && text_[i] != '"') {
    if (text_[i] == '\\') {
      escaped = true;
      ++i;  // the escaped character, a quote included
    }
    ++i;
  }
  if (i >= text_.size()) return false;
  const std::uint32_t self = push(Kind::string, static_cast<std::uint32_t>(begin));
  nodes_[self].length = static_cast<std::uint32_t>(i - begin);
  nodes_[self].escaped = escaped;
  nodes_[self].next = self + 1;
  pos_ = i + 1;
  return true;
}

bool JsonIndex::parse_literal(std::string_view literal, Kind kind) {
  if (text_.substr(pos_, literal.size()) != literal) return false;
  const std::uint32_t self = push(kind, static_cast<std::uint32_t>(pos_));
  nodes_[self].length = static_cast<std::uint32_t>(literal.size());
  nodes_[self].next = self + 1;
  pos_ += literal.size();
  return true;
}

bool JsonIndex::parse_number() {
  const std::size_t begin = pos_;
  const auto is_number_char = [](char c) {
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
  };
  while (pos_ < text_.size() && is_number_char(text_[pos_])) ++pos_;
  const std::uint32_t self = push(Kind::number, static_cast<std::uint32_t>(begin));
  nodes_[self].length = static_cast<std::uint32_t>(pos_ - begin);
  nodes_[self].next = self + 1;
  return true;
}

}  // namespace relay
