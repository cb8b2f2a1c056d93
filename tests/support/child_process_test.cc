#include "tests/support/child_process.h"

#include <sys/wait.h>

#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace weir::testing {
namespace {

TEST(ChildProcessTest, RunsLogsAndReportsExit) {
  absl::StatusOr<std::string> dir = MakeTempDir("weir-child-test");
  ASSERT_TRUE(dir.ok()) << dir.status();
  const std::string log = *dir + "/out.log";
  auto child =
      ChildProcess::Spawn({FindProgram("sh"), "-c", "echo hello; exit 3"}, {.log_path = log});
  ASSERT_TRUE(child.ok()) << child.status();
  absl::Status ready = WaitUntilReady(**child, absl::Seconds(10), [] { return false; });
  EXPECT_EQ(ready.code(), absl::StatusCode::kInternal);
  EXPECT_NE(ready.message().find("hello"), std::string::npos) << ready;
  ASSERT_TRUE(WIFEXITED((*child)->exit_status()));
  EXPECT_EQ(WEXITSTATUS((*child)->exit_status()), 3);
}

TEST(ChildProcessTest, KillAndTerminateStopALongRunningChild) {
  auto sleeper = ChildProcess::Spawn({FindProgram("sleep"), "60"});
  ASSERT_TRUE(sleeper.ok()) << sleeper.status();
  EXPECT_TRUE((*sleeper)->Running());
  (*sleeper)->Terminate(absl::Seconds(5));
  EXPECT_FALSE((*sleeper)->Running());
  EXPECT_TRUE(WIFSIGNALED((*sleeper)->exit_status()));

  auto other = ChildProcess::Spawn({FindProgram("sleep"), "60"});
  ASSERT_TRUE(other.ok()) << other.status();
  absl::Status ready = WaitUntilReady(**other, absl::Milliseconds(100), [] { return false; });
  EXPECT_EQ(ready.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE((*other)->Running());  // killed on timeout
}

TEST(ChildProcessTest, MissingProgramAndFreePorts) {
  EXPECT_EQ(FindProgram("weir-no-such-program"), "");
  EXPECT_EQ(ChildProcess::Spawn({FindProgram("weir-no-such-program")}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<int> port = FreeLoopbackPort();
  ASSERT_TRUE(port.ok()) << port.status();
  EXPECT_GT(*port, 0);
}

}  // namespace
}  // namespace weir::testing
