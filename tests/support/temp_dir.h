#pragma once
// A fresh directory under $TMPDIR for one test, removed with everything in it at scope exit.

#include <filesystem>
#include <string>

namespace relay::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace relay::test
