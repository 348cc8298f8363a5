#pragma once
// The same 1 KiB event body that the wrk scenarios POST (RELAY_BENCH_PAYLOAD is set by CMake),
// read once per benchmark binary.

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace relay::bench {

inline const std::string& event_body() {
  static const std::string body = [] {
    std::ifstream in(RELAY_BENCH_PAYLOAD);
    if (!in) throw std::runtime_error("cannot read " RELAY_BENCH_PAYLOAD);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }();
  return body;
}

}  // namespace relay::bench
