// Fuzz target: parse_config on an arbitrary command line and environment. The input is split
// on '\n'; a piece "RELAY_NAME=value" is an environment variable, any other piece an argument.
// Properties: no crash and no exception but ConfigError, whose message is one non-empty line;
// an accepted configuration is within the bounds relayd relies on.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "relay/config/config.h"
#include "tests/fuzz/fuzz_check.h"

using relay::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::size_t start = 0;
  while (start <= input.size()) {
    const auto end = std::min(input.find('\n', start), input.size());
    const std::string piece(input.substr(start, end - start));
    const auto eq = piece.find('=');
    if (piece.starts_with("RELAY_") && eq != std::string::npos) {
      env[piece.substr(0, eq)] = piece.substr(eq + 1);
    } else {
      args.push_back(piece);
    }
    start = end + 1;
  }

  bool help = false;
  try {
    const relay::Config config = relay::parse_config(args, env, help);
    if (help) return 0;
    check(!config.api_keys.empty() || config.insecure_no_auth || config.dev, "a key or an explicit opt-out");
    for (const auto& key : config.api_keys) check(key.key.size() >= 8, "keys of at least 8 characters");
    check(config.retry_initial_ms > 0 && config.retry_initial_ms <= config.retry_max_delay_ms, "retry-initial");
    check(config.retry_window_ms > 0 && config.attempt_timeout_ms > 0 && config.connect_timeout_ms > 0,
          "positive durations");
    check(config.retention_ms > 0 && config.dlq_retention_ms > 0 && config.shutdown_grace_ms >= 0, "retention");
    check(config.max_in_flight > 0 && config.max_body_bytes > 0, "positive limits");
    check(config.disable_after_ms >= 0, "disable-after is not negative");
    check(!config.data_dir.empty(), "a data directory");
  } catch (const relay::ConfigError& e) {
    const std::string message = e.what();
    check(!message.empty(), "the error has a message");
    // Pieces hold no '\n' (it separates them), so neither may the message.
    check(message.find('\n') == std::string::npos, "the error is one line");
  }
  return 0;
}
