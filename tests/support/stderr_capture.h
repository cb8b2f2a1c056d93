// What the process writes to stderr (weir's log lines among it), readable
// while it is being written: a test can wait for a log line as an
// observable condition, where ::testing::internal::CaptureStderr only hands
// the text over at the end.
//
// Example:
//
//   weir::testing::StderrCapture log;
//   server->Kill();
//   ASSERT_TRUE(weir::testing::WaitFor(
//       [&] { return absl::StrContains(log.Text(), "unavailable ("); }));
//   ASSERT_TRUE(server->Restart().ok());
//   EXPECT_THAT(log.Stop(), HasSubstr("answers again after"));

#ifndef WEIR_TESTS_SUPPORT_STDERR_CAPTURE_H_
#define WEIR_TESTS_SUPPORT_STDERR_CAPTURE_H_

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace weir::testing {

// Redirects file descriptor 2 to a temporary file from construction until
// Stop() or destruction. Not thread-safe itself; the writers may be any
// threads. Do not nest it with another redirection of stderr.
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    const char* tmp = std::getenv("TMPDIR");
    path_ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/weir-stderr-XXXXXX";
    const int fd = ::mkstemp(path_.data());
    if (fd < 0) {
      path_.clear();
      return;
    }
    saved_fd_ = ::dup(STDERR_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  ~StderrCapture() {
    Stop();
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

  // Everything written so far ("" if the capture could not start).
  std::string Text() const {
    if (path_.empty()) return "";
    std::ifstream in(path_);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

  // Puts stderr back (once; later calls only read) and returns the text.
  std::string Stop() {
    if (saved_fd_ >= 0) {
      std::fflush(stderr);
      ::dup2(saved_fd_, STDERR_FILENO);
      ::close(saved_fd_);
      saved_fd_ = -1;
    }
    return Text();
  }

 private:
  std::string path_;
  int saved_fd_ = -1;
};

}  // namespace weir::testing

#endif  // WEIR_TESTS_SUPPORT_STDERR_CAPTURE_H_
