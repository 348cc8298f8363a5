#pragma once
// JsonScanner: reads JSON text once, left to right, validating it without building a tree, and
// can copy a value with the whitespace between its tokens removed. It is the ingest hot path's
// parser (parse_event_body): validation and compaction of the payload are one pass, and only the
// few members relay decodes are ever turned into strings.
//
// The accepted language is exactly nlohmann::json::accept's: RFC 8259, strings checked to be
// UTF-8 and their \u escapes to pair surrogates, numbers refused when they round to infinity as
// a double; and like nlohmann, a NUL byte where a token may start ends the text (what follows
// is never read). Two differences are left to the caller: a leading UTF-8 byte order mark
// (which nlohmann skips) is not whitespace here, and nesting is bounded (`max_depth`).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace relay {

class JsonScanner {
 public:
  // The deepest nesting value() can follow.
  static constexpr int kDepthLimit = 256;

  // The functions below read on from where the last one stopped; after a failure, the text is
  // not valid JSON and the position is unspecified.
  explicit JsonScanner(std::string_view text)
      : begin_(text.data()), cursor_(text.data()), end_(text.data() + text.size()) {}

  // Consumes `c` after any whitespace; false, consuming only the whitespace, if `c` is not next.
  bool consume(char c);
  // A string after any whitespace: its text as written (quotes and escapes included).
  std::optional<std::string_view> string();
  // A value after any whitespace, holding at most `max_depth` levels of arrays and objects (the
  // value itself counts; at most kDepthLimit): its text as written.
  std::optional<std::string_view> value(int max_depth);
  // The same, and `compact` becomes the value's text without whitespace between tokens (string
  // contents, escapes and numbers stay byte for byte as written; unspecified on failure).
  std::optional<std::string_view> value(int max_depth, std::string& compact);
  // True when nothing but whitespace is left, up to the end of the text or a NUL byte.
  bool at_end();
  // Where the cursor is: the length of the text read so far.
  std::size_t offset() const { return static_cast<std::size_t>(cursor_ - begin_); }

 private:
  template <bool kCompact>
  std::optional<std::string_view> scan_value(int max_depth, std::string* compact);

  const char* begin_;
  const char* cursor_;
  const char* end_;
};

}  // namespace relay
