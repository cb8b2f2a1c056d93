// Workload C (bench/README.md): checkpoints of large RocksDB state.
//
// A keyed job writes 10M keys x 100-byte values into ValueState on the
// RocksDB backend. The bench then takes, with JobHandle::TriggerCheckpoint():
//   1. the first (full) checkpoint;
//   2. after 1% of the keys got new values, an incremental one; right after
//      the load it also carries what RocksDB's compactions rewrote since;
//   3. after another 1% of the keys changed, a second incremental one;
// and measures each one's duration and the bytes it added to storage (the
// storage's files before and after). It then cancels the job and starts a new
// pipeline with the same job name and storage, and measures the time from
// Pipeline::Start() until the new job has restored and processed its first
// record (probes that read restored values and check them). All of this to
// local disk (file://) and to s3rver (s3://, started by the bench).
//
// Baseline, in the same run and to the same storage: CheckpointStorage::PutFile
// of one file of the same size as each checkpoint, and GetFile of one file of
// the size the restore downloaded, so a figure reads as "checkpoint vs moving
// its bytes".
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

// Rounds of updates, each to 1% of the keys (distinct ones).
constexpr int kUpdateRounds = 2;

struct Write {
  uint64_t key = 0;
  uint32_t version = 0;
  // A restored job's records: check the key's value instead of writing it.
  bool probe = false;
};

// What the bench, the source and the keyed function share.
struct Control {
  // Rounds of updates the source is to emit after the load.
  std::atomic<int> update_rounds{0};
  std::atomic<int64_t> written{0};
  std::atomic<int64_t> probes_expected{0};
  std::atomic<int64_t> probes{0};
  std::atomic<int64_t> probe_failures{0};
  std::atomic<int64_t> first_probe_ns{0};  // steady_clock, 0: none yet
};

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Split s of n holds the keys s, s + n, s + 2n, ... < keys. Round r (1-based)
// of updates sets its j-th key to version r for j % kUpdateEvery == Offset(r).
struct SplitKeys {
  uint64_t first = 0;
  uint64_t stride = 1;
  uint64_t count = 0;

  uint64_t Key(uint64_t index) const { return first + index * stride; }
  static uint64_t Offset(int round) {
    return static_cast<uint64_t>(round - 1) * kUpdateEvery / kUpdateRounds;
  }
  uint64_t Updates(int round) const {
    const uint64_t offset = Offset(round);
    return count > offset ? (count - offset + kUpdateEvery - 1) / kUpdateEvery : 0;
  }
  uint64_t UpdatedKey(int round, uint64_t update) const {
    return Key(update * kUpdateEvery + Offset(round));
  }
};

SplitKeys KeysOfSplit(uint64_t keys, int split, int splits) {
  const auto s = static_cast<uint64_t>(split);
  const auto n = static_cast<uint64_t>(splits);
  return SplitKeys{s, n, keys > s ? (keys - s + n - 1) / n : 0};
}

uint64_t UpdatesInRound(uint64_t keys, int splits, int round) {
  uint64_t updates = 0;
  for (int split = 0; split < splits; ++split) {
    updates += KeysOfSplit(keys, split, splits).Updates(round);
  }
  return updates;
}

// Emits the initial load, then the rounds of updates Control::update_rounds
// asks for, then nothing, staying alive until the job is stopped. Restored
// from a checkpoint, it first emits probes: per split, the first key of each
// round of updates and one key never updated, each with the version it must
// have.
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
        if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &state.loaded) ||
            !absl::SimpleAtoi(parts[1], &state.rounds) ||
            !absl::SimpleAtoi(parts[2], &state.updated)) {
          return absl::DataLossError("bad position of split " + split.id);
        }
        state.probes = Probes(state);
        control_->probes_expected += static_cast<int64_t>(state.probes.size());
      }
      reader->splits.push_back(std::move(state));
    }
    return std::unique_ptr<SourceReader<Write>>(std::move(reader));
  }

 private:
  struct Reader final : public SourceReader<Write> {
    struct Split {
      SplitKeys keys;
      uint64_t loaded = 0;
      int rounds = 0;        // rounds of updates emitted in full
      uint64_t updated = 0;  // updates emitted of round `rounds` + 1
      std::vector<Write> probes;
    };

    explicit Reader(std::shared_ptr<Control> c) : control(std::move(c)) {}

    absl::StatusOr<PollResult> Poll(SourceOutput<Write>& out) override {
      bool emitted = false;
      const int target_rounds = control->update_rounds.load(std::memory_order_acquire);
      for (size_t idx = 0; idx < splits.size(); ++idx) {
        Split& split = splits[idx];
        const int output = static_cast<int>(idx);
        for (const Write& probe : split.probes) out.Collect(output, probe, 0);
        emitted |= !split.probes.empty();
        split.probes.clear();
        size_t budget = kRecordsPerPoll;
        for (; budget > 0 && split.loaded < split.keys.count; --budget, ++split.loaded) {
          out.Collect(output, Write{split.keys.Key(split.loaded), 0, false}, 0);
        }
        while (budget > 0 && split.loaded == split.keys.count && split.rounds < target_rounds) {
          const int round = split.rounds + 1;
          if (split.updated == split.keys.Updates(round)) {
            split.rounds = round;
            split.updated = 0;
            continue;
          }
          out.Collect(output,
                      Write{split.keys.UpdatedKey(round, split.updated),
                            static_cast<uint32_t>(round), false},
                      0);
          ++split.updated;
          --budget;
        }
        if (budget == kRecordsPerPoll) {
          out.MarkIdle(output);
        } else {
          emitted = true;
        }
      }
      return emitted ? PollResult::kMoreAvailable : PollResult::kNothingAvailable;
    }

    absl::StatusOr<std::vector<std::string>> SnapshotState(int64_t) override {
      std::vector<std::string> states;
      for (const Split& split : splits) {
        states.push_back(absl::StrCat(split.loaded, "/", split.rounds, "/", split.updated));
      }
      return states;
    }

    std::shared_ptr<Control> control;
    std::vector<Split> splits;
  };

  // What a restored split's keys must hold, given its position.
  static std::vector<Write> Probes(const Reader::Split& split) {
    std::vector<Write> probes;
    const SplitKeys& keys = split.keys;
    for (int round = 1; round <= kUpdateRounds; ++round) {
      const uint64_t index = SplitKeys::Offset(round);
      if (index >= split.loaded) continue;
      const bool updated =
          split.rounds >= round || (split.rounds + 1 == round && split.updated > 0);
      probes.push_back(Write{keys.Key(index), updated ? static_cast<uint32_t>(round) : 0u, true});
    }
    // Index 1 is updated by no round (Offset(r) is a multiple of kUpdateEvery / kUpdateRounds).
    if (split.loaded > 1) probes.push_back(Write{keys.Key(1), 0, true});
    return probes;
  }

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
  options.checkpoints.storage_uri = setup.uri;
  options.checkpoints.s3 = setup.s3;
  options.checkpoints.local_dir = scratch_dir;
  options.checkpoints.timeout = absl::Hours(1);
  return options;
}

void AddJob(Pipeline& pipeline, const Setup& setup, const std::shared_ptr<Control>& control) {
  pipeline.Source(std::make_shared<LoadSource>(setup.keys, setup.parallelism, control))
      .Uid("load")
      .KeyBy([](const Write& write) { return write.key; })
      .Process(StoreValues(control))
      .Uid("store")
      .Sink([](const int&) {})
      .Uid("discard");
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

  std::printf("%s (%s):\n", setup.name.c_str(), setup.uri.c_str());
  std::fflush(stdout);
  // The job that writes the state and takes the checkpoints.
  auto control = std::make_shared<Control>();
  Added full;
  double full_seconds = 0;
  std::vector<Added> incremental(kUpdateRounds);
  std::vector<double> incremental_seconds(kUpdateRounds);
  std::vector<uint64_t> changed(kUpdateRounds);
  {
    Pipeline pipeline(JobOptions(setup, state_dir, work.path() + "/scratch-1"));
    AddJob(pipeline, setup, control);
    const double load_cpu_start = ProcessCpuSeconds();
    const auto load_start = std::chrono::steady_clock::now();
    absl::StatusOr<JobHandle> job = pipeline.Start();
    if (!job.ok()) Fail("start", job.status());
    int64_t expected_writes = static_cast<int64_t>(setup.keys);
    WaitFor("the initial load", *job, [&] { return control->written.load() >= expected_writes; });
    const double load_seconds = Since(load_start);
    const double load_cpu_seconds = ProcessCpuSeconds() - load_cpu_start;
    std::printf("  load:          %10.3f s  %12.0f keys/s  (%.3f CPU-s)\n", load_seconds,
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
    std::printf("  full:          %10.3f s  %10.1f MB in %3d files  (checkpoint %" PRId64 ")\n",
                full_seconds, full.bytes / 1e6, full.files, *id);
    std::fflush(stdout);

    for (int round = 1; round <= kUpdateRounds; ++round) {
      changed[round - 1] = UpdatesInRound(setup.keys, p, round);
      expected_writes += static_cast<int64_t>(changed[round - 1]);
      control->update_rounds.store(round, std::memory_order_release);
      WaitFor("the updates", *job, [&] { return control->written.load() >= expected_writes; });
      before = std::move(after);
      start = std::chrono::steady_clock::now();
      id = job->TriggerCheckpoint();
      incremental_seconds[round - 1] = Since(start);
      if (!id.ok()) Fail("incremental checkpoint", id.status());
      after = setup.disk.Files();
      const Added& added = incremental[round - 1] = Diff(before, after);
      std::printf("  incremental %d: %10.3f s  %10.1f MB in %3d files  (%" PRIu64
                  " keys changed; checkpoint %" PRId64 "; storage %.1f MB -> %.1f MB)\n",
                  round, incremental_seconds[round - 1], added.bytes / 1e6, added.files,
                  changed[round - 1], *id, Diff({}, before).total_bytes / 1e6,
                  added.total_bytes / 1e6);
      std::fflush(stdout);
    }
    // Cancel, not Stop: Stop would take a final checkpoint, and the restore
    // below is to be from the last incremental one.
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
  for (int round = 1; round <= kUpdateRounds; ++round) {
    const Added& added = incremental[round - 1];
    results.push_back({"weir",
                       absl::StrCat("incremental-checkpoint-", round, "-", setup.name),
                       p,
                       0,
                       incremental_seconds[round - 1],
                       {{"bytes", static_cast<double>(added.bytes)},
                        {"files", static_cast<double>(added.files)},
                        {"keys_changed", static_cast<double>(changed[round - 1])},
                        {"storage_bytes_after", static_cast<double>(added.total_bytes)}}});
  }

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
    WaitFor("the probes", *job, [&] {
      const int64_t expected = restored->probes_expected.load();
      return expected > 0 && restored->probes.load() >= expected;
    });
    restore_seconds = static_cast<double>(restored->first_probe_ns.load() - start_ns) / 1e9;
    // What the restore downloaded: the files in its scratch directory.
    restore_bytes = Diff({}, StorageOnDisk{work.path() + "/scratch-2", ""}.Files()).total_bytes;
    if (restored->probe_failures.load() != 0 || restored->written.load() != 0) {
      Fail("restore", absl::DataLossError(absl::StrCat(
                          restored->probe_failures.load(), " of ", restored->probes.load(),
                          " probes read a wrong restored value; ", restored->written.load(),
                          " records were re-emitted after the restore")));
    }
    std::printf(
        "  restore:       %10.3f s  to the first record (Start() took %.3f s; %.1f MB "
        "downloaded; %lld restored values checked)\n",
        restore_seconds, start_call_seconds, restore_bytes / 1e6,
        static_cast<long long>(restored->probes.load()));
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
  if (restore_bytes == 0) restore_bytes = incremental.back().total_bytes;
  const double put_full = transfer("full", full.bytes, false);
  std::vector<double> put_incremental;
  for (int round = 1; round <= kUpdateRounds; ++round) {
    put_incremental.push_back(transfer("incremental", incremental[round - 1].bytes, false));
  }
  const double get_full = transfer("restore", restore_bytes, true);
  results.push_back({"baseline",
                     "put-full-" + setup.name,
                     1,
                     0,
                     put_full,
                     {{"bytes", static_cast<double>(full.bytes)}}});
  for (int round = 1; round <= kUpdateRounds; ++round) {
    results.push_back({"baseline",
                       absl::StrCat("put-incremental-", round, "-", setup.name),
                       1,
                       0,
                       put_incremental[round - 1],
                       {{"bytes", static_cast<double>(incremental[round - 1].bytes)}}});
  }
  results.push_back({"baseline",
                     "get-restore-" + setup.name,
                     1,
                     0,
                     get_full,
                     {{"bytes", static_cast<double>(restore_bytes)}}});
  std::printf("  baseline, one file of the same size with CheckpointStorage alone:\n");
  std::printf("    full:          PutFile %8.3f s   checkpoint %.2fx\n", put_full,
              full_seconds / put_full);
  for (int round = 1; round <= kUpdateRounds; ++round) {
    std::printf("    incremental %d: PutFile %8.3f s   checkpoint %.2fx\n", round,
                put_incremental[round - 1],
                incremental_seconds[round - 1] / put_incremental[round - 1]);
  }
  std::printf("    restore:       GetFile %8.3f s   restore %.2fx\n", get_full,
              restore_seconds / get_full);
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
