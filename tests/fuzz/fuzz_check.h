#pragma once
// A property check for fuzz targets: a violated property is a finding, reported the way a
// sanitizer reports one (message, then abort) so that libFuzzer and the replay driver both
// stop and keep the input.

#include <cstdio>
#include <cstdlib>

namespace relay::fuzz {

inline void check(bool ok, const char* property) {
  if (ok) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", property);
  std::abort();
}

}  // namespace relay::fuzz
