#pragma once
// EgressThread: an EgressClient on a thread and io_context of its own.
//
// libcurl is the largest single cost of a delivery on the event loop (about a third of relayd's
// CPU per delivery, most of it inside libcurl and loopback TCP). On its own thread it runs in
// parallel with ingest and scheduling instead of queueing behind them. Requests and answers
// cross between the threads in batches: one post per batch each way, not one per attempt.
//
// Threading: construct, send(), cancel_all() and destroy on the home io_context's thread (or
// while it is not running); callbacks run through the home io_context.

#include <boost/asio/io_context.hpp>
#include <memory>

#include "relay/delivery/egress.h"
#include "relay/delivery/egress_client.h"

namespace relay {

class EgressThread final : public Egress {
 public:
  EgressThread(boost::asio::io_context& home, EgressOptions options);
  // Stops the thread; attempts still running are abandoned without callbacks.
  ~EgressThread() override;
  EgressThread(const EgressThread&) = delete;
  EgressThread& operator=(const EgressThread&) = delete;

  void send(EgressRequest request, Callback done) override;
  void cancel_all() override;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;  // shared with handlers queued on either thread
};

}  // namespace relay
