#pragma once
// JsonIndex: a flat index of one JSON text, built in a single pass over the bytes, that payload
// filters navigate instead of a tree. The text is not copied: nodes point into it, strings stay
// escaped as sent (compared through a decoding cursor, JsonString below) and numbers stay text
// (read as numbers when a filter compares them). Building costs one vector of 20-byte nodes,
// where nlohmann's tree costs an allocation per value, member name and string.
//
// The text is meant to be already validated (the ingest path's JsonScanner does that): the
// index checks the structure it relies on, never reads out of bounds, and refuses text that is
// not one JSON value, but does not police UTF-8 or the grammar of numbers.

#include <compare>
#include <cstdint>
#include <string_view>
#include <vector>

namespace relay {

// A JSON string's content as it stands in the text (between the quotes, escapes included),
// compared by its decoded UTF-8 bytes without decoding it into a buffer.
struct JsonString {
  std::string_view raw;
  bool escaped = false;  // raw holds a backslash; otherwise raw is the decoded string

  // Byte-wise (= code point) order of the decoded string against a plain one.
  std::strong_ordering compare(std::string_view plain) const;
  bool equals(std::string_view plain) const;
  bool starts_with(std::string_view plain) const;
};

class JsonIndex {
 public:
  enum class Kind : std::uint8_t { null, boolean_false, boolean_true, number, string, array, object };
  static constexpr std::uint32_t npos = 0xFFFFFFFF;
  // Nesting beyond this refuses the text (the API refuses bodies deeper than 256 levels).
  static constexpr int kMaxDepth = 512;

  // Indexes `text`, which must outlive the index. False (and an empty index) when the text is
  // not one JSON value, or nests deeper than kMaxDepth.
  bool build(std::string_view text);

  bool empty() const { return nodes_.empty(); }
  // The node of the whole value; valid when !empty().
  static constexpr std::uint32_t root() { return 0; }
  Kind kind(std::uint32_t node) const { return nodes_[node].kind; }
  // A number's text, or a string's content as JsonString.
  std::string_view number_text(std::uint32_t node) const;
  JsonString string(std::uint32_t node) const;
  // The value of an object's member named `key` (the last one, when a name repeats, as
  // nlohmann and JSON.parse read it), or npos when the node is not an object or has no such member.
  std::uint32_t member(std::uint32_t object, std::string_view key) const;
  // An array's element, or npos when the node is not an array or is shorter.
  std::uint32_t element(std::uint32_t array, std::uint32_t index) const;

 private:
  struct Node {
    std::uint32_t begin = 0;   // strings: first byte after the quote; numbers: first byte
    std::uint32_t length = 0;  // strings and numbers: bytes of text
    std::uint32_t next = 0;    // the node after this one's subtree (its next sibling, if any)
    std::uint32_t count = 0;   // arrays: elements; objects: members (name node + value subtree)
    Kind kind = Kind::null;
    bool escaped = false;  // strings holding a backslash
  };

  bool parse_value(int depth);
  bool parse_string();
  bool parse_literal(std::string_view literal, Kind kind);
  bool parse_number();
  void skip_space();
  std::uint32_t push(Kind kind, std::uint32_t begin);

  std::string_view text_;
  std::size_t pos_ = 0;
  std::vector<Node> nodes_;
};

}  // namespace relay
