#pragma once
// Http2Subscriber: nghttpd (Debian's nghttp2-server) as an HTTPS subscriber that offers HTTP/2
// by ALPN, with the test certificate of tests/data/tls. Beast, behind TestSubscriber, speaks
// only HTTP/1.1; this is the subscriber that shows relay's attempts take HTTP/2 when offered.
//
// Every path answers 200 with the body "ok" (nghttpd serves a file of that name from a temp
// document root, whatever the method). nghttpd's verbose log of frames is kept, so tests read
// how requests arrived: which connection, which stream.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"

namespace relay::test {

class Http2Subscriber {
 public:
  // Starts nghttpd on a free loopback port and waits until it accepts connections. Throws if
  // nghttpd is missing or does not come up. The destructor stops it.
  Http2Subscriber();
  Http2Subscriber(const Http2Subscriber&) = delete;
  Http2Subscriber& operator=(const Http2Subscriber&) = delete;

  // "https://127.0.0.1:PORT" + path, for a path of one segment ("/hook").
  std::string url(const std::string& path) const;

  // From the frame log: POST requests received, and over how many connections.
  std::size_t posts() const;
  std::size_t connections_with_posts() const;
  std::string log() const;

 private:
  // The connection id ("[id=N]") of every POST in the frame log, in order.
  std::vector<std::string> post_connection_ids() const;

  // One try on a newly chosen port; false when nghttpd exited at start (the port was taken).
  bool start(const std::string& root);

  TempDir dir_;
  std::uint16_t port_ = 0;
  std::optional<ChildProcess> nghttpd_;
};

}  // namespace relay::test
