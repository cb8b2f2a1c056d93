// Workload C (../shared/BENCHMARKS.md): checkpoints of large RocksDB state.
//
// A keyed job writes 10M keys x 100-byte values into ValueState on the
// RocksDB backend. The bench then takes, with JobHandle::TriggerCheckpoint():
//   1. the first (full) checkpoint;
//   2. after 1% of the keys got new values, an incremental one;
// and measures each one's duration and the bytes it added to storage (the
// storage's files before and after). It then cancels the job and starts a new
// pipeline with the same job name and storage, and measures the time from
// Pipeline::Start() until the new job has restored and processed its first
// record (a probe that reads a restored value and checks it). All of this to
// local disk (file://) and to s3rver (s3://, started by the bench).
//
// Baseline, in the same run and to the same storage: CheckpointStorage::PutFile
// of one file of the same size as each checkpoint, and GetFile of one file of
// the full checkpoint's size, so a figure reads as "checkpoint vs moving its
// bytes".
//
//   weir-bench-ckpt [--keys=10000000] [--json=ckpt.json] [--parallelism=1]
//                   [--storage=local,s3] [--state-memory-mb=512]

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/workload_events.h"
#include "tests/unit/checkpoint/s3rver_fixture.h"
#include "weir/weir.h"

namespace weir::bench {
namespace {

namespace fs = std::filesystem;

constexpr size_t kValueBytes = 100;
using Value = std::array<uint8_t, kValueBytes>;
// One key in kUpdateEvery gets a new value before the incremental checkpoint.
constexpr uint64_t kUpdateEvery = 100;
constexpr size_t kRecordsPerPoll = 1024;
constexpr char kJobName[] = "ckpt-bench";
constexpr char kBucket[] = "weir-bench";

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The value of `key` at `version`: pseudo-random bytes, so RocksDB's
// compression cannot shrink the state below its real size.
Value MakeValue(uint64_t key, uint32_t version) {
  Value value;
  uint64_t state = key * 0x100000001b3ULL + version;
  for (size_t offset = 0; offset < kValueBytes; offset += 8) {
    const uint64_t word = SplitMix64(state);
    std::memcpy(value.data() + offset, &word, std::min<size_t>(8, kValueBytes - offset));
  }
  return value;
}

struct Write {
  uint64_t key = 0;
  uint32_t version = 0;
  // A restored job's first record: checks the key's value instead of writing it.
  bool probe = false;
};

// What the bench, the source and the keyed function share.
struct Control {
  std::atomic<bool> emit_updates{false};
  std::atomic<int64_t> written{0};
  std::atomic<int64_t> probes{0};
  std::atomic<int64_t> probe_failures{0};
  std::atomic<int64_t> first_probe_ns{0};  // steady_clock, 0: none yet
};

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Split s of n holds the keys s, s + n, s + 2n, ... < keys. Its j-th key
// with j % kUpdateEvery == 0 is updated.
struct SplitKeys {
  uint64_t first = 0;
  uint64_t stride = 1;
  uint64_t count = 0;
  uint64_t updates() const { return (count + kUpdateEvery - 1) / kUpdateEvery; }
  uint64_t Key(uint64_t index) const { return first + index * stride; }
  uint64_t UpdatedKey(uint64_t update) const { return Key(update * kUpdateEvery); }
};

SplitKeys KeysOfSplit(uint64_t keys, int split, int splits) {
  const auto s = static_cast<uint64_t>(split);
  const auto n = static_cast<uint64_t>(splits);
  return SplitKeys{s, n, keys > s ? (keys - s + n - 1) / n : 0};
}

// Emits the initial load, then (once Control::emit_updates is set) the 1%
// updates, then nothing, staying alive until the job is stopped. Restored
// from a checkpoint, it emits one probe per split first.
class LoadSource final : public Source<Write> {
 public:
  LoadSource(uint64_t keys, int splits, std::shared_ptr<Control> control)
      : keys_(keys), splits_(splits), control_(std::move(control)) {}

  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    std::vector<SourceSplit> splits;
    for (int split = 0; split < splits_; ++split) splits.push_back({absl::StrCat("load-", split)});
    return splits;
  }

  absl::StatusOr<std::unique_ptr<SourceReader<Write>>> CreateReader(
      const SourceReaderContext& context) override {
    auto reader = std::make_unique<Reader>(control_);
    for (const SourceSplit& split : context.splits) {
      int number = 0;
      if (!absl::SimpleAtoi(absl::string_view(split.id).substr(split.id.find('-') + 1), &number)) {
        return absl::InvalidArgumentError("bad split " + split.id);
      }
      Reader::Split state{KeysOfSplit(keys_, number, splits_)};
      if (split.state) {
        std::vector<std::string> parts = absl::StrSplit(*split.state, '/');
        if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &state.loaded) ||
            !absl::SimpleAtoi(parts[1], &state.updated)) {
          return absl::DataLossError("bad position of split " + split.id);
        }
        state.probe_pending = state.keys.count > 0;
      }
      reader->splits.push_back(state);
    }
    return std::unique_ptr<SourceReader<Write>>(std::move(reader));
  }

 private:
  struct Reader final : public SourceReader<Write> {
    struct Split {
      SplitKeys keys;
      uint64_t loaded = 0;
      uint64_t updated = 0;
      bool probe_pending = false;
    };

    explicit Reader(std::shared_ptr<Control> c) : control(std::move(c)) {}

    absl::StatusOr<PollResult> Poll(SourceOutput<Write>& out) override {
      bool emitted = false;
      const bool updates = control->emit_updates.load(std::memory_order_acquire);
      for (size_t idx = 0; idx < splits.size(); ++idx) {
        Split& split = splits[idx];
        const int output = static_cast<int>(idx);
        if (split.probe_pending) {
          // Key 0 of the split: updated (version 1) once any update was emitted.
          out.Collect(output, Write{split.keys.Key(0), split.updated > 0 ? 1u : 0u, true}, 0);
          split.probe_pending = false;
          emitted = true;
        }
        size_t budget = kRecordsPerPoll;
        for (; budget > 0 && split.loaded < split.keys.count; --budget, ++split.loaded) {
          out.Collect(output, Write{split.keys.Key(split.loaded), 0, false}, 0);
          emitted = true;
        }
        if (updates && split.loaded == split.keys.count) {
          for (; budget > 0 && split.updated < split.keys.updates(); --budget, ++split.updated) {
            out.Collect(output, Write{split.keys.UpdatedKey(split.updated), 1, false}, 0);
            emitted = true;
          }
        }
        if (budget == kRecordsPerPoll) out.MarkIdle(output);
      }
      return emitted ? PollResult::kMoreAvailable : PollResult::kNothingAvailable;
    }

    absl::StatusOr<std::vector<std::string>> SnapshotState(int64_t) override {
      std::vector<std::string> states;
      for (const Split& split : splits)
        states.push_back(absl::StrCat(split.loaded, "/", split.updated));
      return states;
    }

    std::shared_ptr<Control> control;
    std::vector<Split> splits;
  };

  uint64_t keys_;
  int splits_;
  std::shared_ptr<Control> control_;
};

// Writes each key's value into ValueState; a probe checks it instead.
class StoreValues final : public KeyedProcessFunction<uint64_t, Write, int> {
 public:
  explicit StoreValues(std::shared_ptr<Control> control) : control_(std::move(control)) {}

  absl::Status ProcessElement(const Write& write, Context& ctx, Collector<int>&) override {
    ValueState<Value> state = ctx.GetState(kValue);
    if (write.probe) {
      const Value* value = state.Get();
      if (value == nullptr || *value != MakeValue(write.key, write.version)) {
        control_->probe_failures.fetch_add(1);
      }
      int64_t none = 0;
      control_->first_probe_ns.compare_exchange_strong(none, SteadyNowNs());
      control_->probes.fetch_add(1);
      return absl::OkStatus();
    }
    state.Update(MakeValue(write.key, write.version));
    control_->written.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }

 private:
  static inline const ValueStateDescriptor<Value> kValue{"value"};
  std::shared_ptr<Control> control_;
};

// Storage as files on local disk: a file:// root, or s3rver's data directory
// (objects are "<key>._S3rver_object" files).
struct StorageOnDisk {
  std::string root;
  std::string suffix;

  // Path -> size of every stored object.
  std::map<std::string, uint64_t> Files() const {
    std::map<std::string, uint64_t> files;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      const std::string path = it->path().string();
      if (!suffix.empty() &&
          (path.size() < suffix.size() ||
           path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0)) {
        continue;
      }
      files[path] = it->file_size(ec);
    }
    return files;
  }
};

struct Added {
  uint64_t bytes = 0;
  int files = 0;
  uint64_t total_bytes = 0;  // of everything in storage after
};

Added Diff(const std::map<std::string, uint64_t>& before,
           const std::map<std::string, uint64_t>& after) {
  Added added;
  for (const auto& [path, size] : after) {
    added.total_bytes += size;
    auto it = before.find(path);
    if (it == before.end() || it->second != size) {
      added.bytes += size;
      ++added.files;
    }
  }
  return added;
}

struct Setup {
  std::string name;  // "local" or "s3"
  std::string uri;
  S3Options s3;
  StorageOnDisk disk;
  uint64_t keys = 0;
  int parallelism = 1;
  RocksDbStateOptions rocksdb;
};

[[noreturn]] void Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "weir-bench-ckpt: %s: %s\n", what.c_str(), status.ToString().c_str());
  std::exit(1);
}

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Waits until `done()`, failing after `timeout_s` or when the job ends.
template <class F>
void WaitFor(const char* what, JobHandle& job, F done, double timeout_s = 3600) {
  const auto start = std::chrono::steady_clock::now();
  while (!done()) {
    if (job.done()) Fail(std::string("the job ended while waiting for ") + what, job.Wait());
    if (Since(start) > timeout_s) Fail(what, absl::DeadlineExceededError("timed out"));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

PipelineOptions JobOptions(const Setup& setup, const std::string& state_dir,
                           const std::string& scratch_dir) {
  PipelineOptions options;
  options.parallelism = setup.parallelism;
  options.job_name = kJobName;
  options.state_backend = StateBackend::RocksDb(state_dir, setup.rocksdb);
  // No periodic checkpoints: the bench takes them with TriggerCheckpoint().
  options.checkpoints.storage = setup.uri;
  options.checkpoints.s3 = setup.s3;
  options.checkpoints.local_dir = scratch_dir;
  options.checkpoints.timeout = absl::Hours(1);
  return options;
}

void AddJob(Pipeline& pipeline, const Setup& setup, const std::shared_ptr<Control>& control) {
  pipeline.Source(std::make_shared<LoadSource>(setup.keys, setup.parallelism, control))
      .KeyBy([](const Write& write) { return write.key; })
      .Process(StoreValues(control))
      .Sink([](const int&) {});
}

// Writes a file of `bytes` pseudo-random bytes.
void WriteBlob(const std::string& path, uint64_t bytes) {
  std::ofstream out(path, std::ios::binary);
  std::vector<uint64_t> chunk(1 << 17);
  uint64_t state = bytes;
  for (uint64_t written = 0; written < bytes;) {
    for (uint64_t& word : chunk) word = SplitMix64(state);
    const uint64_t n = std::min<uint64_t>(bytes - written, chunk.size() * sizeof(uint64_t));
    out.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(n));
    written += n;
  }
  if (!out.good()) Fail("write " + path, absl::InternalError("write failed"));
}

void Run(const Setup& setup, std::vector<BenchResult>& results) {
  ScratchDir work("weir-bench-ckpt-" + setup.name);
  const std::string state_dir = work.path() + "/rocksdb";
  const int p = setup.parallelism;
  const double keys = static_cast<double>(setup.keys);
  uint64_t updates = 0;
  for (int split = 0; split < p; ++split) updates += KeysOfSplit(setup.keys, split, p).updates();

  std::printf("%s (%s):\n", setup.name.c_str(), setup.uri.c_str());
  std::fflush(stdout);
  // The job that writes the state and takes the two checkpoints.
  auto control = std::make_shared<Control>();
  Added full;
  Added incremental;
  double full_seconds = 0;
  double incremental_seconds = 0;
  {
    Pipeline pipeline(JobOptions(setup, state_dir, work.path() + "/scratch-1"));
    AddJob(pipeline, setup, control);
    const double load_cpu_start = ProcessCpuSeconds();
    const auto load_start = std::chrono::steady_clock::now();
    absl::StatusOr<JobHandle> job = pipeline.Start();
    if (!job.ok()) Fail("start", job.status());
    WaitFor("the initial load", *job,
            [&] { return control->written.load() >= static_cast<int64_t>(setup.keys); });
    const double load_seconds = Since(load_start);
    const double load_cpu_seconds = ProcessCpuSeconds() - load_cpu_start;
    std::printf("  load:        %10.3f s  %12.0f keys/s  (%.3f CPU-s)\n", load_seconds,
                keys / load_seconds, load_cpu_seconds);
    results.push_back({"weir",
                       "load-" + setup.name,
                       p,
                       keys / load_seconds,
                       load_seconds,
                       {{"cpu_seconds", load_cpu_seconds}}});

    auto before = setup.disk.Files();
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<int64_t> id = job->TriggerCheckpoint();
    full_seconds = Since(start);
    if (!id.ok()) Fail("full checkpoint", id.status());
    auto after = setup.disk.Files();
    full = Diff(before, after);
    std::printf("  full:        %10.3f s  %12.1f MB in %d files  (checkpoint %" PRId64 ")\n",
                full_seconds, full.bytes / 1e6, full.files, *id);
    std::fflush(stdout);

    control->emit_updates.store(true, std::memory_order_release);
    WaitFor("the updates", *job,
            [&] { return control->written.load() >= static_cast<int64_t>(setup.keys + updates); });
    before = std::move(after);
    start = std::chrono::steady_clock::now();
    id = job->TriggerCheckpoint();
    incremental_seconds = Since(start);
    if (!id.ok()) Fail("incremental checkpoint", id.status());
    after = setup.disk.Files();
    incremental = Diff(before, after);
    std::printf("  incremental: %10.3f s  %12.1f MB in %d files  (%" PRIu64
                " keys changed; checkpoint %" PRId64 "; storage %.1f MB -> %.1f MB)\n",
                incremental_seconds, incremental.bytes / 1e6, incremental.files, updates, *id,
                full.total_bytes / 1e6, incremental.total_bytes / 1e6);
    std::fflush(stdout);
    // Cancel, not Stop: Stop would take a final checkpoint, and the restore
    // below is to be from the incremental one.
    job->Cancel();
    (void)job->Wait();
  }
  results.push_back({"weir",
                     "full-checkpoint-" + setup.name,
                     p,
                     0,
                     full_seconds,
                     {{"bytes", static_cast<double>(full.bytes)},
                      {"files", static_cast<double>(full.files)},
                      {"keys", keys}}});
  results.push_back({"weir",
                     "incremental-checkpoint-" + setup.name,
                     p,
                     0,
                     incremental_seconds,
                     {{"bytes", static_cast<double>(incremental.bytes)},
                      {"files", static_cast<double>(incremental.files)},
                      {"keys_changed", static_cast<double>(updates)},
                      {"storage_bytes_before", static_cast<double>(full.total_bytes)},
                      {"storage_bytes_after", static_cast<double>(incremental.total_bytes)}}});

  // A new pipeline with the same job name and storage: restore and resume.
  double start_call_seconds = 0;
  double restore_seconds = 0;
  uint64_t restore_bytes = 0;
  {
    auto restored = std::make_shared<Control>();
    Pipeline pipeline(JobOptions(setup, state_dir, work.path() + "/scratch-2"));
    AddJob(pipeline, setup, restored);
    const auto start = std::chrono::steady_clock::now();
    const int64_t start_ns = SteadyNowNs();
    absl::StatusOr<JobHandle> job = pipeline.Start();
    start_call_seconds = Since(start);
    if (!job.ok()) Fail("restore", job.status());
    WaitFor("the probes", *job, [&] { return restored->probes.load() >= p; });
    restore_seconds = static_cast<double>(restored->first_probe_ns.load() - start_ns) / 1e9;
    // What the restore downloaded: the files in its scratch directory.
    restore_bytes = Diff({}, StorageOnDisk{work.path() + "/scratch-2", ""}.Files()).total_bytes;
    if (restored->probe_failures.load() != 0 || restored->written.load() != 0) {
      Fail("restore",
           absl::DataLossError(absl::StrCat(
               restored->probe_failures.load(), " of ", p, " probes read a wrong restored value; ",
               restored->written.load(), " records were re-emitted after the restore")));
    }
    std::printf(
        "  restore:     %10.3f s  to the first record (Start() took %.3f s; %.1f MB "
        "downloaded)\n",
        restore_seconds, start_call_seconds, restore_bytes / 1e6);
    job->Cancel();
    (void)job->Wait();
  }
  results.push_back({"weir",
                     "restore-" + setup.name,
                     p,
                     0,
                     restore_seconds,
                     {{"bytes", static_cast<double>(restore_bytes)},
                      {"start_call_seconds", start_call_seconds}}});

  // Baseline: move the same bytes with the storage client alone.
  absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage =
      CheckpointStorage::Open(setup.uri, setup.s3);
  if (!storage.ok()) Fail("open storage", storage.status());
  // Seconds to PutFile (or, with `download`, to GetFile) one file of `bytes`.
  auto transfer = [&](const char* what, uint64_t bytes, bool download) {
    const std::string local = work.path() + "/blob-" + what;
    const std::string remote = std::string("baseline/") + what;
    WriteBlob(local, bytes);
    auto start = std::chrono::steady_clock::now();
    absl::Status status = (*storage)->PutFile(remote, local);
    double seconds = Since(start);
    if (!status.ok()) Fail("baseline upload", status);
    if (download) {
      start = std::chrono::steady_clock::now();
      status = (*storage)->GetFile(remote, local + ".back");
      seconds = Since(start);
      if (!status.ok()) Fail("baseline download", status);
    }
    (void)(*storage)->Delete(remote);
    std::error_code ec;
    fs::remove(local, ec);
    fs::remove(local + ".back", ec);
    return seconds;
  };
  if (restore_bytes == 0) restore_bytes = incremental.total_bytes;
  const double put_full = transfer("full", full.bytes, false);
  const double put_incremental = transfer("incremental", incremental.bytes, false);
  const double get_full = transfer("restore", restore_bytes, true);
  results.push_back({"baseline",
                     "put-full-" + setup.name,
                     1,
                     0,
                     put_full,
                     {{"bytes", static_cast<double>(full.bytes)}}});
  results.push_back({"baseline",
                     "put-incremental-" + setup.name,
                     1,
                     0,
                     put_incremental,
                     {{"bytes", static_cast<double>(incremental.bytes)}}});
  results.push_back({"baseline",
                     "get-restore-" + setup.name,
                     1,
                     0,
                     get_full,
                     {{"bytes", static_cast<double>(restore_bytes)}}});
  std::printf(
      "  baseline (one file of the same size, CheckpointStorage alone): PutFile %.3f s / %.3f s, "
      "GetFile %.3f s\n  checkpoint / baseline: full %.2fx, incremental %.2fx, restore %.2fx\n",
      put_full, put_incremental, get_full, full_seconds / put_full,
      incremental_seconds / put_incremental, restore_seconds / get_full);
  std::fflush(stdout);
}

int Main(int argc, char** argv) {
  uint64_t keys = 10'000'000;
  int parallelism = 1;
  std::string storages = "local,s3";
  size_t memory_mb = 0;
  const BenchFlags flags =
      ParseFlags(argc, argv, 0,
                 {{"--keys=", "N", [&](const char* v) { keys = std::strtoull(v, nullptr, 10); }},
                  {"--storage=", "local,s3", [&](const char* v) { storages = v; }},
                  {"--state-memory-mb=", "MB",
                   [&](const char* v) { memory_mb = std::strtoull(v, nullptr, 10); }}});
  if (flags.events > 0) keys = flags.events;  // --events=N: a synonym of --keys=N
  if (flags.parallelism.size() == 1) parallelism = flags.parallelism[0];

  RocksDbStateOptions rocksdb;
  if (memory_mb > 0) rocksdb.state_memory_limit = memory_mb << 20;
  std::printf("C: %" PRIu64
              " keys x %zu-byte values in RocksDB, parallelism %d, state_memory_limit %zu "
              "MiB (%s)\n",
              keys, kValueBytes, parallelism, rocksdb.state_memory_limit >> 20,
              memory_mb > 0 ? "--state-memory-mb" : "the default");
  std::vector<BenchResult> results;
  if (storages.find("local") != std::string::npos) {
    ScratchDir storage("weir-bench-ckpt-storage");
    Setup setup{"local", "file://" + storage.path(), {}, {storage.path(), ""}, keys, parallelism,
                rocksdb};
    Run(setup, results);
  }
  if (storages.find("s3") != std::string::npos) {
    // s3rver keeps its data under $TMPDIR/weir-s3rver-*: give it a directory
    // of its own so the bench can read the stored objects' sizes.
    ScratchDir s3_root("weir-bench-ckpt-s3");
    const char* tmp = std::getenv("TMPDIR");
    const std::optional<std::string> saved_tmp =
        tmp != nullptr ? std::optional<std::string>(tmp) : std::nullopt;
    ::setenv("TMPDIR", s3_root.path().c_str(), 1);
    absl::StatusOr<std::unique_ptr<testing::S3rver>> server = testing::S3rver::Start({kBucket});
    if (saved_tmp) {
      ::setenv("TMPDIR", saved_tmp->c_str(), 1);
    } else {
      ::unsetenv("TMPDIR");
    }
    if (!server.ok()) Fail("start s3rver", server.status());
    std::string data_dir;
    for (const auto& entry : fs::directory_iterator(s3_root.path())) {
      data_dir = entry.path().string() + "/data/" + kBucket;
    }
    Setup setup{"s3",
                absl::StrCat("s3://", kBucket, "/bench"),
                (*server)->Options(),
                {data_dir, "._S3rver_object"},
                keys,
                parallelism,
                rocksdb};
    Run(setup, results);
  }
  WriteJson(flags.json, "C", keys, results);
  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) { return weir::bench::Main(argc, argv); }
