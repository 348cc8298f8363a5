#pragma once
// A property check for fuzz targets: a violated property is a finding, reported the way a
// sanitizer reports one (message, then abort) so that libFuzzer and the replay driver both
// stop and keep the input.

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace relay::fuzz {

inline void check(bool ok, const char* property) {
  if (ok) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", property);
  std::abort();
}

// Nesting at most 64 deep. Deep nesting is the JSON library's problem, not relay's: the JSON
// fuzzers keep to inputs it handles.
inline bool shallow(std::string_view text) {
  int depth = 0;
  for (const char c : text) {
    if (c == '[' || c == '{') {
      if (++depth > 64) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

}  // namespace relay::fuzz
