// parse_config: defaults, flags in both spellings, RELAY_* environment variables, flags winning
// over the environment, and a one-line ConfigError for every bad value.

#include "relay/config/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/temp_dir.h"
#include "tests/support/test_subscriber.h"

namespace relay {
namespace config_test {

std::vector<std::string> cidr_texts(const Config& c) {
  std::vector<std::string> out;
  for (const Cidr& cidr : c.allow_cidrs) out.push_back(cidr.to_string());
  return out;
}

using Args = std::vector<std::string>;
using Env = std::map<std::string, std::string>;

const std::string kKey = "admin:0123456789abcdef";

Config parse(const Args& args, const Env& env = {}) {
  bool help = false;
  Config config = parse_config(args, env, help);
  EXPECT_FALSE(help);
  return config;
}

// The message of the ConfigError that parsing throws, or "" (and a test failure) if none.
std::string error_of(const Args& args, const Env& env = {}) {
  bool help = false;
  try {
    parse_config(args, env, help);
  } catch (const ConfigError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a ConfigError: " << e.what();
    return "";
  }
  ADD_FAILURE() << "accepted";
  return "";
}

TEST(ConfigTest, DefaultsFollowTheSpec) {
  const Config c = parse({"--api-key", kKey});
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 8080);
  EXPECT_EQ(c.data_dir, "./data");
  ASSERT_EQ(c.api_keys.size(), 1u);
  EXPECT_EQ(c.api_keys[0].scope, ApiScope::admin);
  EXPECT_EQ(c.api_keys[0].key, "0123456789abcdef");
  EXPECT_FALSE(c.insecure_no_auth);
  EXPECT_TRUE(c.sync_writes);
  EXPECT_EQ(c.retry_initial_ms, 5'000);
  EXPECT_EQ(c.retry_max_delay_ms, 600'000);
  EXPECT_EQ(c.retry_window_ms, 3'600'000);
  EXPECT_EQ(c.attempt_timeout_ms, 15'000);
  EXPECT_EQ(c.connect_timeout_ms, 5'000);
  EXPECT_EQ(c.max_in_flight, 4096u);
  EXPECT_EQ(c.max_body_bytes, 1u << 20);
  EXPECT_EQ(c.retention_ms, 72LL * 3'600'000);
  EXPECT_EQ(c.dlq_retention_ms, 7LL * 86'400'000);
  EXPECT_EQ(c.shutdown_grace_ms, 10'000);
  EXPECT_EQ(c.disable_after_ms, 5LL * 86'400'000);
  EXPECT_EQ(c.job_retention_ms, 7LL * 86'400'000);
  EXPECT_FALSE(c.allow_private_networks);
  EXPECT_TRUE(c.allow_cidrs.empty());
  EXPECT_EQ(c.log_level, LogLevel::info);
  EXPECT_FALSE(c.dev);
}

TEST(ConfigTest, EveryFlagIsApplied) {
  const Config c = parse({"--listen", "0.0.0.0:9000",
                          "--data-dir=/var/lib/relay",
                          "--api-key", "ingest:ingestkey1",
                          "--durability", "buffered",
                          "--retry-initial", "500ms",
                          "--retry-max-delay=2m",
                          "--retry-window", "2h",
                          "--attempt-timeout", "30s",
                          "--connect-timeout", "1s",
                          "--ca-file", test::TestSubscriber::tls_ca_file(),
                          "--max-in-flight", "100",
                          "--max-body", "512KiB",
                          "--retention", "1d",
                          "--dlq-retention", "14d",
                          "--retention-interval", "5s",
                          "--shutdown-grace", "0s",
                          "--circuit-probe-interval", "2s",
                          "--disable-after", "36h",
                          "--job-retention", "2d",
                          "--allow-private-networks",
                          "--allow-cidr", "10.0.0.0/8",
                          "--log-level", "debug",
                          "--insecure-no-auth",
                          "--dev"});
  EXPECT_EQ(c.listen_host, "0.0.0.0");
  EXPECT_EQ(c.listen_port, 9000);
  EXPECT_EQ(c.data_dir, "/var/lib/relay");
  ASSERT_EQ(c.api_keys.size(), 1u);
  EXPECT_EQ(c.api_keys[0].scope, ApiScope::ingest);
  EXPECT_EQ(c.api_keys[0].key, "ingestkey1");
  EXPECT_FALSE(c.sync_writes);
  EXPECT_EQ(c.retry_initial_ms, 500);
  EXPECT_EQ(c.retry_max_delay_ms, 120'000);
  EXPECT_EQ(c.retry_window_ms, 7'200'000);
  EXPECT_EQ(c.attempt_timeout_ms, 30'000);
  EXPECT_EQ(c.connect_timeout_ms, 1'000);
  EXPECT_EQ(c.ca_file, test::TestSubscriber::tls_ca_file());
  EXPECT_EQ(c.max_in_flight, 100u);
  EXPECT_EQ(c.max_body_bytes, 512u << 10);
  EXPECT_EQ(c.retention_ms, 86'400'000);
  EXPECT_EQ(c.dlq_retention_ms, 14LL * 86'400'000);
  EXPECT_EQ(c.retention_interval_ms, 5'000);
  EXPECT_EQ(c.shutdown_grace_ms, 0);
  EXPECT_EQ(c.circuit_probe_interval_ms, 2'000);
  EXPECT_EQ(c.disable_after_ms, 36LL * 3'600'000);
  EXPECT_EQ(c.job_retention_ms, 2LL * 86'400'000);
  EXPECT_TRUE(c.allow_private_networks);
  ASSERT_EQ(c.allow_cidrs.size(), 1u);
  EXPECT_EQ(c.allow_cidrs[0].to_string(), "10.0.0.0/8");
  EXPECT_EQ(c.log_level, LogLevel::debug);
  EXPECT_TRUE(c.insecure_no_auth);
  EXPECT_TRUE(c.dev);
}

TEST(ConfigTest, ListenTakesAnIpAddressAndAnyPort) {
  Config c = parse({"--insecure-no-auth", "--listen", "[::1]:0"});
  EXPECT_EQ(c.listen_host, "::1");
  EXPECT_EQ(c.listen_port, 0);
  c = parse({"--insecure-no-auth", "--listen=0.0.0.0:65535"});
  EXPECT_EQ(c.listen_host, "0.0.0.0");
  EXPECT_EQ(c.listen_port, 65535);
  // A name is refused here, with the flag's one-line error, not later when relayd binds.
  try {
    parse({"--insecure-no-auth", "--listen=localhost:8080"});
    ADD_FAILURE() << "a host name was accepted";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "invalid value 'localhost:8080' for --listen: expected HOST:PORT with HOST an IP address");
  }
  try {
    parse({"--insecure-no-auth", "--allow-cidr=10.0.0.1/8"});
    ADD_FAILURE() << "a CIDR with host bits was accepted";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "invalid value '10.0.0.1/8' for --allow-cidr: expected an address range such as 10.0.0.0/8");
  }
}

TEST(ConfigTest, SizesAndLogLevels) {
  EXPECT_EQ(parse({"--insecure-no-auth", "--max-body", "65536"}).max_body_bytes, 65536u);
  EXPECT_EQ(parse({"--insecure-no-auth", "--max-body", "100B"}).max_body_bytes, 100u);
  EXPECT_EQ(parse({"--insecure-no-auth", "--max-body", "2MiB"}).max_body_bytes, 2u << 20);
  EXPECT_EQ(parse({"--insecure-no-auth", "--max-body", "1GiB"}).max_body_bytes, 1u << 30);
  EXPECT_EQ(parse({"--insecure-no-auth", "--log-level", "info"}).log_level, LogLevel::info);
  EXPECT_EQ(parse({"--insecure-no-auth", "--log-level", "warn"}).log_level, LogLevel::warn);
  EXPECT_EQ(parse({"--insecure-no-auth", "--log-level", "error"}).log_level, LogLevel::error);
}

TEST(ConfigTest, EnvironmentVariablesSetEveryKindOfFlag) {
  const Config c = parse({}, {{"RELAY_LISTEN", "127.0.0.2:81"},
                              {"RELAY_DATA_DIR", "/tmp/x"},
                              {"RELAY_API_KEY", "admin:adminkey1,ingest:ingestkey1"},
                              {"RELAY_DURABILITY", "buffered"},
                              {"RELAY_RETRY_INITIAL", "1s"},
                              {"RELAY_RETRY_MAX_DELAY", "1m"},
                              {"RELAY_MAX_IN_FLIGHT", "7"},
                              {"RELAY_MAX_BODY", "1KiB"},
                              {"RELAY_ALLOW_PRIVATE_NETWORKS", "true"},
                              {"RELAY_ALLOW_CIDR", "10.0.0.0/8,,192.168.0.0/16"},
                              {"RELAY_LOG_LEVEL", "warn"},
                              {"RELAY_SHUTDOWN_GRACE", "3s"},
                              {"RELAY_DISABLE_AFTER", "0s"},
                              {"RELAY_JOB_RETENTION", "0s"},
                              {"UNRELATED", "ignored"}});
  EXPECT_EQ(c.listen_host, "127.0.0.2");
  EXPECT_EQ(c.listen_port, 81);
  EXPECT_EQ(c.data_dir, "/tmp/x");
  ASSERT_EQ(c.api_keys.size(), 2u);
  EXPECT_EQ(c.api_keys[0].scope, ApiScope::admin);
  EXPECT_EQ(c.api_keys[0].key, "adminkey1");
  EXPECT_EQ(c.api_keys[1].scope, ApiScope::ingest);
  EXPECT_EQ(c.api_keys[1].key, "ingestkey1");
  EXPECT_FALSE(c.sync_writes);
  EXPECT_EQ(c.retry_initial_ms, 1'000);
  EXPECT_EQ(c.retry_max_delay_ms, 60'000);
  EXPECT_EQ(c.max_in_flight, 7u);
  EXPECT_EQ(c.max_body_bytes, 1024u);
  EXPECT_TRUE(c.allow_private_networks);
  EXPECT_EQ(cidr_texts(c), (std::vector<std::string>{"10.0.0.0/8", "192.168.0.0/16"}));
  EXPECT_EQ(c.log_level, LogLevel::warn);
  EXPECT_EQ(c.shutdown_grace_ms, 3'000);
  EXPECT_EQ(c.disable_after_ms, 0) << "0s: never disable";
  EXPECT_EQ(c.job_retention_ms, 0) << "0s: finished jobs are kept";
}

TEST(ConfigTest, BooleanEnvironmentVariables) {
  for (const char* on : {"1", "true", "yes", "on"}) {
    EXPECT_TRUE(parse({}, {{"RELAY_INSECURE_NO_AUTH", on}}).insecure_no_auth) << on;
  }
  for (const char* off : {"0", "false", "no", "off"}) {
    const Config c = parse({"--api-key", kKey}, {{"RELAY_DEV", off}, {"RELAY_ALLOW_PRIVATE_NETWORKS", off}});
    EXPECT_FALSE(c.dev) << off;
    EXPECT_FALSE(c.allow_private_networks) << off;
  }
  EXPECT_TRUE(parse({}, {{"RELAY_DEV", "1"}}).dev);
  EXPECT_NE(error_of({"--api-key", kKey}, {{"RELAY_DEV", "maybe"}}).find("RELAY_DEV"), std::string::npos);
}

TEST(ConfigTest, FlagsWinOverTheEnvironment) {
  const Config c = parse({"--listen", "127.0.0.1:1", "--api-key", kKey, "--allow-cidr", "10.1.0.0/16"},
                         {{"RELAY_LISTEN", "127.0.0.1:2"},
                          {"RELAY_API_KEY", "ingest:fromenvironment"},
                          {"RELAY_ALLOW_CIDR", "10.2.0.0/16,10.3.0.0/16"},
                          {"RELAY_LOG_LEVEL", "error"}});
  EXPECT_EQ(c.listen_port, 1);
  ASSERT_EQ(c.api_keys.size(), 1u);
  EXPECT_EQ(c.api_keys[0].key, "0123456789abcdef");
  EXPECT_EQ(cidr_texts(c), (std::vector<std::string>{"10.1.0.0/16"}));
  EXPECT_EQ(c.log_level, LogLevel::error);  // not given as a flag: the environment applies

  // A flag wins even when the environment's value for it is bad, whatever the order.
  EXPECT_EQ(parse({"--insecure-no-auth", "--durability", "fsync"}, {{"RELAY_DURABILITY", "bogus"}}).sync_writes, true);
}

TEST(ConfigTest, RepeatableFlagsAccumulate) {
  const Config c = parse({"--api-key", "admin:firstkey1", "--api-key=ingest:secondkey", "--allow-cidr", "10.0.0.0/8",
                          "--allow-cidr=fd00::/8"});
  ASSERT_EQ(c.api_keys.size(), 2u);
  EXPECT_EQ(c.api_keys[0].key, "firstkey1");
  EXPECT_EQ(c.api_keys[1].key, "secondkey");
  EXPECT_EQ(cidr_texts(c), (std::vector<std::string>{"10.0.0.0/8", "fd00::/8"}));
  // A key may itself contain ':' and '=' characters.
  EXPECT_EQ(parse({"--api-key=admin:a:b=c-long"}).api_keys[0].key, "a:b=c-long");
}

TEST(ConfigTest, ANonRepeatableFlagGivenTwiceTakesTheLastValue) {
  EXPECT_EQ(parse({"--insecure-no-auth", "--log-level", "debug", "--log-level", "warn"}).log_level, LogLevel::warn);
}

TEST(ConfigTest, NoKeyIsAnErrorUnlessInsecureOrDev) {
  const std::string message = error_of({});
  EXPECT_NE(message.find("--api-key"), std::string::npos) << message;
  EXPECT_NO_THROW(parse({"--insecure-no-auth"}));
  EXPECT_NO_THROW(parse({"--dev"}));
  EXPECT_NO_THROW(parse({}, {{"RELAY_INSECURE_NO_AUTH", "true"}}));
  EXPECT_FALSE(error_of({}, {{"RELAY_INSECURE_NO_AUTH", "false"}}).empty());
  EXPECT_FALSE(error_of({}, {{"RELAY_API_KEY", ",,"}}).empty());
}

TEST(ConfigTest, HelpStopsParsing) {
  for (const Args& args : {Args{"--help"}, Args{"-h"}, Args{"--listen", "bad", "--help"}}) {
    bool help = false;
    EXPECT_NO_THROW(parse_config(args, {}, help));
    EXPECT_TRUE(help);
  }
  EXPECT_NE(usage().find("--api-key"), std::string::npos);
}

struct BadCase {
  Args args;
  Env env;
};

TEST(ConfigTest, EveryBadValueIsOneLineConfigError) {
  const std::vector<BadCase> cases = {
      {{"--listen", "nope"}, {}},
      {{"--listen", ":8080"}, {}},
      {{"--listen", "127.0.0.1:"}, {}},
      {{"--listen", "127.0.0.1:65536"}, {}},
      {{"--listen", "127.0.0.1:-1"}, {}},
      {{"--listen", "127.0.0.1:80x"}, {}},
      {{"--data-dir="}, {}},
      {{"--api-key", "root:0123456789"}, {}},
      {{"--api-key", "admin:short"}, {}},
      {{"--api-key", "admin"}, {}},
      {{"--api-key", ":0123456789"}, {}},
      {{"--durability", "sometimes"}, {}},
      {{"--durability", "FSYNC"}, {}},
      {{"--retry-initial", "5"}, {}},
      {{"--retry-initial", "5x"}, {}},
      {{"--retry-initial", "-5s"}, {}},
      {{"--retry-initial", "0s"}, {}},
      {{"--retry-initial", ""}, {}},
      {{"--retry-initial", " 5s"}, {}},
      {{"--retry-initial", "1.5s"}, {}},
      {{"--retry-max-delay", "forever"}, {}},
      {{"--retry-window", "0ms"}, {}},
      {{"--retry-window", "9999999999999999d"}, {}},
      {{"--attempt-timeout", "15"}, {}},
      {{"--connect-timeout", "5S"}, {}},
      {{"--retention", "3w"}, {}},
      {{"--dlq-retention", "0d"}, {}},
      {{"--shutdown-grace", "soon"}, {}},
      {{"--retention-interval", "0s"}, {}},
      {{"--circuit-probe-interval", "0ms"}, {}},
      {{"--disable-after", "5"}, {}},
      {{"--disable-after", "never"}, {}},
      {{"--disable-after", "-1d"}, {}},
      {{"--job-retention", "7"}, {}},
      {{"--job-retention", "forever"}, {}},
      {{"--job-retention", "-1d"}, {}},
      {{"--job-retention", ""}, {}},
      {{"--ca-file", ""}, {}},
      {{"--ca-file", "/nonexistent/ca.pem"}, {}},
      {{"--ca-file", "/tmp"}, {}},  // a directory
      {{"--max-in-flight", "0"}, {}},
      {{"--max-in-flight", "-1"}, {}},
      {{"--max-in-flight", "many"}, {}},
      {{"--max-in-flight", "4294967296"}, {}},
      {{"--max-body", "0"}, {}},
      {{"--max-body", "1TB"}, {}},
      {{"--max-body", "1 MiB"}, {}},
      {{"--max-body", "MiB"}, {}},
      {{"--max-body", "1mib"}, {}},
      {{"--log-level", "verbose"}, {}},
      {{"--unknown-flag"}, {}},
      {{"--listen"}, {}},
      {{"--dev=1"}, {}},
      {{"--insecure-no-auth=true"}, {}},
      {{"positional"}, {}},
      {{"-x"}, {}},
      {{"--"}, {}},
      {{"--retry-initial", "2m", "--retry-max-delay", "1m"}, {}},
      {{}, {{"RELAY_LISTEN", "nope"}}},
      {{}, {{"RELAY_MAX_BODY", "huge"}}},
      {{}, {{"RELAY_API_KEY", "admin:goodkey1,ingest:bad"}}},
      {{}, {{"RELAY_INSECURE_NO_AUTH", "maybe"}}},
      {{}, {{"RELAY_RETRY_INITIAL", "1h"}}},  // more than the default max delay
  };
  for (const auto& c : cases) {
    Args args = c.args;
    // Every case has a key so that only the bad value can be the error.
    if (!c.env.count("RELAY_API_KEY")) args.insert(args.begin(), {"--api-key", kKey});
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    for (const auto& [k, v] : c.env) joined += k + "=" + v + " ";
    const std::string message = error_of(args, c.env);
    EXPECT_FALSE(message.empty()) << joined;
    EXPECT_EQ(message.find('\n'), std::string::npos) << joined << ": " << message;
  }
}

TEST(ConfigTest, AnOverflowingSizeIsRejected) {
  // 2^44 MiB is 2^64 bytes: it must not wrap around to a small size.
  EXPECT_FALSE(error_of({"--insecure-no-auth", "--max-body", "17592186044417MiB"}).empty());
  EXPECT_FALSE(error_of({"--insecure-no-auth", "--max-body", "18446744073709551615GiB"}).empty());
}

TEST(ConfigTest, AValueWithALineBreakStillGivesOneLine) {
  // Environment values can hold anything; the error relayd prints must stay one line.
  for (const Env& env : {Env{{"RELAY_LOG_LEVEL", "warn\nerror"}}, Env{{"RELAY_DURABILITY", "fsync\r\nx"}}}) {
    const std::string message = error_of({"--insecure-no-auth"}, env);
    EXPECT_FALSE(message.empty());
    EXPECT_EQ(message.find_first_of("\r\n"), std::string::npos) << message;
  }
  const std::string message = error_of({"--insecure-no-auth", "--listen", "a\nb"});
  EXPECT_EQ(message.find_first_of("\r\n"), std::string::npos) << message;
}

TEST(ConfigTest, ErrorsNameTheFlagAndValueButNeverTheApiKey) {
  std::string message = error_of({"--insecure-no-auth", "--retry-window", "1y"});
  EXPECT_NE(message.find("--retry-window"), std::string::npos) << message;
  EXPECT_NE(message.find("1y"), std::string::npos) << message;

  message = error_of({"--api-key", "superuser:TopSecretValue"});
  EXPECT_NE(message.find("--api-key"), std::string::npos) << message;
  EXPECT_EQ(message.find("TopSecretValue"), std::string::npos) << message;
  message = error_of({}, {{"RELAY_API_KEY", "admin:TopSecretValue,ingest:short"}});
  EXPECT_EQ(message.find("TopSecretValue"), std::string::npos) << message;
  EXPECT_EQ(message.find("short"), std::string::npos) << message;
}

TEST(ConfigTest, IngressLimits) {
  const Config defaults = parse({"--insecure-no-auth"});
  EXPECT_EQ(defaults.max_body_memory, 256u << 20);
  EXPECT_EQ(defaults.max_connections, 10'000u);
  EXPECT_EQ(defaults.max_pending_deliveries, 0u);  // off

  const Config c = parse({"--insecure-no-auth", "--max-body-memory", "64MiB", "--max-connections", "500",
                          "--max-pending-deliveries", "100000"});
  EXPECT_EQ(c.max_body_memory, 64u << 20);
  EXPECT_EQ(c.max_connections, 500u);
  EXPECT_EQ(c.max_pending_deliveries, 100'000u);
  EXPECT_EQ(parse({"--insecure-no-auth"}, {{"RELAY_MAX_PENDING_DELIVERIES", "7"}}).max_pending_deliveries, 7u);

  EXPECT_EQ(error_of({"--insecure-no-auth", "--max-body-memory", "0"}),
            "invalid value '0' for --max-body-memory: expected a size such as 256MiB or 1GiB");
  EXPECT_EQ(error_of({"--insecure-no-auth", "--max-connections", "0"}),
            "invalid value '0' for --max-connections: expected a positive integer");
  EXPECT_EQ(error_of({"--insecure-no-auth", "--max-pending-deliveries", "-1"}),
            "invalid value '-1' for --max-pending-deliveries: expected a number of deliveries (0 for no bound)");
}

}  // namespace config_test
}  // namespace relay

namespace relay {
namespace config_test {

TEST(ConfigTest, ClusterModeIsOffByDefaultAndTakesItsFlagsTogether) {
  const Config single = parse({"--api-key", kKey});
  EXPECT_FALSE(single.cluster.enabled());
  EXPECT_EQ(single.cluster.prefix, "/relay/");
  EXPECT_EQ(single.cluster.timeout_ms, 2'000);

  const Config c = parse({"--api-key", kKey, "--cluster-etcd", "http://10.0.0.1:2379,https://etcd-1.etcd:2379/",
                          "--advertise", "http://relay-0.relay:8080/", "--shard", "relay-0", "--cluster-prefix",
                          "/team-a/relay/", "--cluster-timeout", "500ms"});
  EXPECT_TRUE(c.cluster.enabled());
  EXPECT_EQ(c.cluster.etcd_endpoints, (std::vector<std::string>{"http://10.0.0.1:2379", "https://etcd-1.etcd:2379"}));
  EXPECT_EQ(c.cluster.advertise, "http://relay-0.relay:8080");
  EXPECT_EQ(c.cluster.shard, "relay-0");
  EXPECT_EQ(c.cluster.prefix, "/team-a/relay/");
  EXPECT_EQ(c.cluster.timeout_ms, 500);

  const Config from_env = parse({}, {{"RELAY_API_KEY", kKey},
                                     {"RELAY_CLUSTER_ETCD", "http://127.0.0.1:2379"},
                                     {"RELAY_ADVERTISE", "http://127.0.0.1:8080"},
                                     {"RELAY_SHARD", "s1"}});
  EXPECT_EQ(from_env.cluster.shard, "s1");
  EXPECT_EQ(from_env.cluster.etcd_endpoints.size(), 1u);
}

// A secured etcd: the files are checked at startup, the password read from its file.
TEST(ConfigTest, SecuredEtcdFlagsAreCheckedAtStartupAndThePasswordIsReadFromItsFile) {
  test::TempDir dir;
  const auto write = [&](const std::string& name, const std::string& text) {
    const std::string path = dir.str() + "/" + name;
    std::ofstream(path) << text;
    return path;
  };
  const std::string ca = test::TestSubscriber::tls_ca_file();
  const std::string cert = test::TestSubscriber::tls_test_file("server.pem");
  const std::string key = test::TestSubscriber::tls_test_file("server.key");
  const std::string password = write("password", "s3cret with spaces\n");
  const Args base = {"--api-key", kKey, "--cluster-etcd", "https://10.0.0.1:2379,https://10.0.0.2:2379",
                     "--advertise", "http://a:8080", "--shard", "s1"};
  const auto with = [&](Args extra) {
    Args args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };

  const Config c = parse(with({"--cluster-etcd-ca", ca, "--cluster-etcd-cert", cert, "--cluster-etcd-key", key,
                               "--cluster-etcd-user", "relay", "--cluster-etcd-password-file", password}));
  EXPECT_EQ(c.cluster.etcd_ca_file, ca);
  EXPECT_EQ(c.cluster.etcd_cert_file, cert);
  EXPECT_EQ(c.cluster.etcd_key_file, key);
  EXPECT_EQ(c.cluster.etcd_user, "relay");
  EXPECT_EQ(c.cluster.etcd_password, "s3cret with spaces");
  const Config from_env = parse(base, {{"RELAY_CLUSTER_ETCD_USER", "relay"},
                                       {"RELAY_CLUSTER_ETCD_PASSWORD_FILE", write("crlf", "pw\r\n")}});
  EXPECT_EQ(from_env.cluster.etcd_password, "pw");

  const auto error_with = [&](Args extra) { return error_of(with(std::move(extra))); };
  const std::string missing = dir.str() + "/missing.pem";
  // Unreadable, empty or wrong files: the error names the flag and the file.
  for (const auto& [flag, file] : {std::pair{"--cluster-etcd-ca", missing}, {"--cluster-etcd-ca", key},
                                   {"--cluster-etcd-ca", write("empty.pem", "")}}) {
    const std::string error = error_with({flag, file});
    EXPECT_NE(error.find(std::string(flag) + " " + file), std::string::npos) << error;
  }
  EXPECT_NE(error_with({"--cluster-etcd-ca", missing}).find("No such file"), std::string::npos);
  EXPECT_NE(error_with({"--cluster-etcd-cert", missing, "--cluster-etcd-key", key}).find("--cluster-etcd-cert " + missing),
            std::string::npos);
  EXPECT_NE(error_with({"--cluster-etcd-cert", cert, "--cluster-etcd-key", cert}).find("no unencrypted PEM private key"),
            std::string::npos);
  // The CA's certificate with the server's key: not a pair.
  EXPECT_NE(error_with({"--cluster-etcd-cert", ca, "--cluster-etcd-key", key}).find("is not the key of the certificate"),
            std::string::npos);
  EXPECT_NE(error_with({"--cluster-etcd-cert", cert}).find("--cluster-etcd-key"), std::string::npos);
  EXPECT_NE(error_with({"--cluster-etcd-user", "relay"}).find("--cluster-etcd-password-file"), std::string::npos);
  EXPECT_NE(error_with({"--cluster-etcd-password-file", password}).find("--cluster-etcd-user"), std::string::npos);
  EXPECT_NE(error_with({"--cluster-etcd-user", "relay", "--cluster-etcd-password-file", write("blank", "\n")})
                .find("is empty"),
            std::string::npos);
  EXPECT_NE(error_with({"--cluster-etcd-user", "a user"}).find("--cluster-etcd-user"), std::string::npos);
  // TLS files are for https:// endpoints only.
  EXPECT_NE(error_of({"--api-key", kKey, "--cluster-etcd", "https://a:2379,http://b:2379", "--advertise",
                      "http://a:8080", "--shard", "s1", "--cluster-etcd-ca", ca})
                .find("http://b:2379"),
            std::string::npos);
  // And all of them for cluster mode only.
  EXPECT_NE(error_of({"--api-key", kKey, "--cluster-etcd-ca", ca}).find("--cluster-etcd"), std::string::npos);
}

TEST(ConfigTest, BadClusterFlagsAreRefusedWithOneLine) {
  const Args cluster = {"--api-key", kKey, "--cluster-etcd", "http://127.0.0.1:2379", "--shard", "s1"};
  EXPECT_NE(error_of(cluster).find("--advertise"), std::string::npos);
  const auto with = [&](Args extra) {
    Args args = cluster;
    args.insert(args.end(), extra.begin(), extra.end());
    return error_of(args);
  };
  EXPECT_NE(with({"--advertise", "relay-0:8080"}).find("--advertise"), std::string::npos);
  EXPECT_NE(with({"--advertise", "ftp://relay-0"}).find("--advertise"), std::string::npos);
  EXPECT_NE(with({"--advertise", "http://relay-0/api"}).find("--advertise"), std::string::npos);
  EXPECT_NE(with({"--advertise", "http://a:8080", "--shard", "Relay_0"}).find("--shard"), std::string::npos);
  EXPECT_NE(with({"--advertise", "http://a:8080", "--shard", std::string(64, 'a')}).find("--shard"), std::string::npos);
  EXPECT_NE(with({"--advertise", "http://a:8080", "--cluster-prefix", "relay"}).find("--cluster-prefix"),
            std::string::npos);
  EXPECT_NE(with({"--advertise", "http://a:8080", "--cluster-timeout", "0s"}).find("--cluster-timeout"),
            std::string::npos);
  EXPECT_NE(error_of({"--api-key", kKey, "--cluster-etcd", "http://a:2379,,http://b:2379"}).find("--cluster-etcd"),
            std::string::npos);
  // Shards call each other with an admin key of their own configuration.
  EXPECT_NE(error_of({"--api-key", "ingest:0123456789abcdef", "--cluster-etcd", "http://a:2379", "--advertise",
                      "http://b:8080", "--shard", "s1"})
                .find("admin"),
            std::string::npos);
  EXPECT_NE(error_of({"--api-key", kKey, "--shard", "s1"}).find("--cluster-etcd"), std::string::npos);
}

}  // namespace config_test
}  // namespace relay
