#include "tests/support/store_fixture.h"

#include <chrono>

namespace relay::test {
namespace {

constexpr auto kDeadline = std::chrono::seconds(30);

}  // namespace

StoreFixture::StoreFixture(StoreFixtureOptions options) : options_(options) { open(); }

StoreFixture::~StoreFixture() = default;

void StoreFixture::open() {
  store_ = Store::open(StoreOptions{dir_.str() + "/db", options_.sync_writes, 8 << 20});
  if (options_.pipeline) pipeline_ = std::make_unique<CommitPipeline>(*store_, nullptr);
}

void StoreFixture::reopen() {
  pipeline_.reset();
  store_.reset();
  open();
}

Status StoreFixture::commit(CommitPipeline::Command command) {
  auto done = submit(*pipeline_, std::move(command));
  return wait(done);
}

std::promise<void> StoreFixture::hold_writer() {
  std::promise<void> release;
  // The holding command's status is of no interest; its future may go unread.
  static_cast<void>(hold_writer(*pipeline_, release.get_future().share()));
  return release;
}

std::future<Status> StoreFixture::hold_writer(CommitPipeline& pipeline, std::shared_future<void> release) {
  auto started = std::make_shared<std::promise<void>>();
  auto running = started->get_future();
  auto held = submit(pipeline, [started, release](WriteTxn&) -> Status {
    started->set_value();
    release.wait();
    return Ok{};
  });
  EXPECT_EQ(running.wait_for(kDeadline), std::future_status::ready) << "the writer was never held";
  return held;
}

std::future<Status> StoreFixture::submit(CommitPipeline& pipeline, CommitPipeline::Command command,
                                         CommitPipeline::Priority priority) {
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  pipeline.submit(std::move(command), [promise](const Status& status) { promise->set_value(status); }, priority);
  return future;
}

Status StoreFixture::wait(std::future<Status>& future) {
  if (future.wait_for(kDeadline) != std::future_status::ready) return make_error(Errc::internal, "timed out");
  return future.get();
}

}  // namespace relay::test
