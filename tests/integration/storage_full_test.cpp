// A full disk (spec sections 2 and 4): the real relayd with its data directory on a small
// tmpfs that another file fills. Writes answer 503 and /readyz 503 while the process stays up
// and reads keep working; once space is freed relayd recovers by itself, and every event it
// acknowledged, before or after, survives a restart. A start on a full disk fails in one line.
//
// Mounting a tmpfs needs root (CI runs the tests as root); elsewhere the tests skip.

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tests/support/relayd_api_test.h"
#include "tests/support/temp_dir.h"

namespace relay::test {
namespace storage_full_test {

namespace fs = std::filesystem;

// Big enough for relayd to start, small enough to fill in a few hundred writes.
constexpr const char* kTmpfsOptions = "size=48m";
// Left free by the filler file when relayd starts: a few hundred 16 KiB events.
constexpr std::uintmax_t kRoomForEvents = 12u << 20;
constexpr std::size_t kEventPayloadBytes = 16 * 1024;

// Random hex text: LZ4 gains little on it, so every event costs its size on disk.
std::string incompressible_text(std::mt19937_64& random, std::size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text(bytes, '0');
  for (char& c : text) c = kHex[random() & 15];
  return text;
}

class StorageFull : public RelaydApiTest {
 protected:
  void SetUp() override {
    mount_point_ = dir_.path() / "tmpfs";
    fs::create_directories(mount_point_);
    if (::mount("tmpfs", mount_point_.c_str(), "tmpfs", 0, kTmpfsOptions) != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs (" << std::strerror(errno) << "): the full-disk tests need root, as in CI";
    }
    mounted_ = true;
    data_dir_ = (mount_point_ / "data").string();
    fs::create_directories(data_dir_);
  }

  void TearDown() override {
    relayd_.reset();  // SIGKILL before the filesystem goes away
    if (mounted_) ::umount2(mount_point_.c_str(), MNT_DETACH);
  }

  // Writes the filler file until only `leave` bytes are free (0: until the disk is full).
  void fill_disk(std::uintmax_t leave) {
    std::ofstream out(filler(), std::ios::binary | std::ios::app);
    const std::string chunk(1 << 20, 'x');
    for (;;) {
      const std::uintmax_t available = fs::space(mount_point_).available;
      if (available <= leave) break;
      const std::size_t n = static_cast<std::size_t>(std::min<std::uintmax_t>(chunk.size(), available - leave));
      if (!out.write(chunk.data(), static_cast<std::streamsize>(n)) || !out.flush()) break;  // full
    }
  }

  void start_relayd() {
    RelaydOptions options;
    options.data_dir = data_dir_;
    relayd_.emplace(options);
  }

  HttpResponse publish_big() {
    const json body = {{"type", "storage.fill"},
                       {"payload", {{"blob", incompressible_text(random_, kEventPayloadBytes)}}}};
    return call("POST", "/v1/events", body.dump());
  }

  long status_of(const std::string& path) { return http_.get(relayd().url(path)).status; }

  double storage_writable_gauge() {
    const std::string text = http_.get(relayd().url("/metrics")).body;
    const auto at = text.find("\nrelay_storage_writable ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + std::strlen("\nrelay_storage_writable ")));
  }

  fs::path filler() const { return mount_point_ / "filler"; }

  TempDir dir_;
  fs::path mount_point_;
  std::string data_dir_;
  bool mounted_ = false;
  std::mt19937_64 random_{42};
};

TEST_F(StorageFull, WritesAnswer503UntilSpaceIsFreedThenRecoverWithoutRestart) {
  fill_disk(kRoomForEvents);
  start_relayd();

  // Fill what is left with events: every answer is 202 until the first 503.
  std::vector<std::string> acknowledged;
  HttpResponse refused;
  for (int i = 0; i < 5000 && refused.status == 0; ++i) {
    const HttpResponse r = publish_big();
    if (r.status == 202) {
      acknowledged.push_back(r.json()["id"].get<std::string>());
    } else {
      refused = r;
    }
  }
  ASSERT_EQ(refused.status, 503) << refused.describe() << " after " << acknowledged.size() << " events";
  EXPECT_EQ(refused.error_code(), "unavailable");
  ASSERT_FALSE(acknowledged.empty());

  // While the disk is full: the process stays up, every write is refused, reads work.
  for (int i = 0; i < 20; ++i) {
    const HttpResponse r = publish_big();
    ASSERT_EQ(r.status, 503) << "write " << i << " while full: " << r.describe() << "\nrelayd log:\n"
                             << relayd().log_text();
    EXPECT_EQ(r.error_code(), "unavailable");
  }
  const HttpResponse sub = call("POST", "/v1/subscriptions", json{{"url", "http://127.0.0.1:9/hook"}}.dump());
  EXPECT_EQ(sub.status, 503) << sub.describe();
  EXPECT_EQ(status_of("/healthz"), 200);
  EXPECT_EQ(status_of("/readyz"), 503);
  EXPECT_EQ(call("GET", "/v1/events/" + acknowledged.front()).status, 200);
  EXPECT_EQ(call("GET", "/v1/events/" + acknowledged.back()).status, 200);
  EXPECT_EQ(storage_writable_gauge(), 0);
  EXPECT_TRUE(relayd().wait_for_log(
      [](const std::string& line) { return line.find("storage not writable") != std::string::npos; }));

  // Space comes back: relayd recovers by itself, no restart.
  fs::remove(filler());
  EXPECT_TRUE(eventually([&] { return status_of("/readyz") == 200; })) << relayd().log_text();
  for (int i = 0; i < 20; ++i) {
    const HttpResponse r = publish_big();
    ASSERT_EQ(r.status, 202) << "write " << i << " after recovery: " << r.describe();
    acknowledged.push_back(r.json()["id"].get<std::string>());
  }
  EXPECT_EQ(storage_writable_gauge(), 1);
  EXPECT_EQ(call("POST", "/v1/subscriptions", json{{"url", "http://127.0.0.1:9/hook"}}.dump()).status, 201);

  // Nothing acknowledged was lost.
  relayd().restart();
  for (const std::string& id : acknowledged) {
    ASSERT_EQ(call("GET", "/v1/events/" + id).status, 200) << "acknowledged event " << id << " lost";
  }
}

TEST_F(StorageFull, StartOnAFullDiskFailsWithOneClearLine) {
  start_relayd();
  relayd_.reset();  // the data directory exists, as after a crash
  fill_disk(0);

  const RelaydExit exit = run_relayd_to_exit(
      {"--data-dir", data_dir_, "--listen", "127.0.0.1:0", "--api-key", "admin:" + std::string(kAdminKey)});
  EXPECT_FALSE(exit.started);
  EXPECT_NE(exit.exit_code, 0);
  ASSERT_EQ(exit.stderr_lines.size(), 1u) << ::testing::PrintToString(exit.stderr_lines);
  EXPECT_NE(exit.stderr_lines[0].find("full filesystem"), std::string::npos) << exit.stderr_lines[0];
  EXPECT_NE(exit.stderr_lines[0].find(data_dir_), std::string::npos) << exit.stderr_lines[0];
}

}  // namespace storage_full_test
}  // namespace relay::test
