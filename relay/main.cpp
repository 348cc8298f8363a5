// relayd: the relay daemon. Parses configuration (exit 2 with one line on bad input) and runs.

#include <cstdio>
#include <exception>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "relay/app/relay_app.h"
#include "relay/config/config.h"

extern char** environ;

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::map<std::string, std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text(*entry);
    if (const auto eq = text.find('='); eq != std::string::npos && text.rfind("RELAY_", 0) == 0) {
      env.emplace(text.substr(0, eq), text.substr(eq + 1));
    }
  }
  try {
    bool help = false;
    const relay::Config config = relay::parse_config(args, env, help);
    if (help) {
      std::cout << relay::usage();
      return 0;
    }
    return relay::run_relay(config);
  } catch (const relay::ConfigError& e) {
    std::cerr << "relayd: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "relayd: " << e.what() << "\n";
    return 1;
  }
}
