// A ready-made enrichment join for change streams (CDC): keep the latest row
// per key from a dimension stream (inserts and updates upsert, deletes
// remove), broadcast to every worker, and join each event of a stream keyed
// by the same key to it. An event whose row has not arrived yet waits in
// keyed state (checkpointed) up to `max_wait` of processing time and is joined
// as soon as the row arrives; after that it goes to the `unmatched` side
// output with the reason — never dropped silently.
//
// Example:
//
//   const weir::OutputTag<weir::Unmatched<Event>> kUnmatched("unmatched");
//   auto content = changes.Map(ToRowChange).Broadcast();   // Stream<RowChange<std::string,
//   Content>> auto enriched = events.KeyBy([](const Event& e) { return e.content_id; })
//                       .Connect(content)
//                       .Process(weir::EnrichmentJoin<std::string, Event, Content, Enriched>(
//                           [](const Event& e, const Content& c) { return Enrich(e, c); },
//                           {.max_wait = absl::Seconds(30), .unmatched = kUnmatched}));
//   enriched.SideOutput(kUnmatched).Sink(dead_letters);

#ifndef WEIR_JOIN_H_
#define WEIR_JOIN_H_

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "weir/codec.h"
#include "weir/functions.h"
#include "weir/state.h"

namespace weir {

// One change of a dimension row: `row` set = insert/update (upsert),
// nullopt = delete.
template <class K, class Row>
struct RowChange {
  K key;
  std::optional<Row> row;
};

// An event that found no dimension row in time.
template <class Event>
struct Unmatched {
  Event event;
  std::string reason;
};

template <class Event>
struct EnrichmentJoinOptions {
  // How long an event waits for its row (processing time). Default: 30 s
  absl::Duration max_wait = absl::Seconds(30);
  // Where events go that found no row in time (nullopt: they are dropped and
  // counted as late records — set it unless that is really wanted).
  std::optional<OutputTag<Unmatched<Event>>> unmatched;
};

// Event and Row need a weir::Codec (events wait in keyed state, rows live in
// broadcast state); K must be hashable (absl::Hash) and have a Codec.
template <class K, class Event, class Row, class Out>
class EnrichmentJoin final
    : public KeyedBroadcastProcessFunction<K, Event, RowChange<K, Row>, Out> {
  using Base = KeyedBroadcastProcessFunction<K, Event, RowChange<K, Row>, Out>;

 public:
  using JoinFn = std::function<Out(const Event&, const Row&)>;

  EnrichmentJoin(JoinFn join, EnrichmentJoinOptions<Event> options = {})
      : join_(std::move(join)), options_(std::move(options)) {}

  absl::Status ProcessElement(const Event& event, typename Base::ReadOnlyContext& ctx,
                              Collector<Out>& out) override {
    if (const Row* row = ctx.GetBroadcastState(kRows).Get(ctx.current_key())) {
      out.Collect(join_(event, *row));
      return absl::OkStatus();
    }
    ListState<Event> waiting = ctx.GetState(kWaiting);
    if (waiting.Get().empty()) {
      const Timestamp deadline =
          ctx.current_processing_time() + absl::ToInt64Milliseconds(options_.max_wait);
      ctx.GetState(kDeadline).Update(deadline);
      ctx.timer_service().RegisterProcessingTimeTimer(deadline);
      // At the end of input no row can come any more: release them then too.
      ctx.timer_service().RegisterEventTimeTimer(kMaxTimestamp);
    }
    waiting.Add(event);
    return absl::OkStatus();
  }

  absl::Status ProcessBroadcastElement(const RowChange<K, Row>& change, typename Base::Context& ctx,
                                       Collector<Out>& out) override {
    BroadcastState<K, Row> rows = ctx.GetBroadcastState(kRows);
    if (!change.row) {
      rows.Remove(change.key);
      return absl::OkStatus();
    }
    rows.Put(change.key, *change.row);
    // Events of this key that were waiting for the row.
    ctx.ApplyToKey(change.key, [&](typename Base::KeyedContext& keyed) {
      ListState<Event> waiting = keyed.GetState(kWaiting);
      for (const Event& event : waiting.Get()) out.Collect(join_(event, *change.row));
      waiting.Clear();
      ValueState<Timestamp> deadline = keyed.GetState(kDeadline);
      if (const Timestamp* at = deadline.Get())
        keyed.timer_service().DeleteProcessingTimeTimer(*at);
      keyed.timer_service().DeleteEventTimeTimer(kMaxTimestamp);
      deadline.Clear();
    });
    return absl::OkStatus();
  }

  absl::Status OnTimer(Timestamp, typename Base::OnTimerContext& ctx, Collector<Out>&) override {
    ListState<Event> waiting = ctx.GetState(kWaiting);
    const std::string reason = ctx.time_domain() == TimeDomain::kEventTime
                                   ? std::string("the input ended before a row for the key arrived")
                                   : absl::StrCat("no row for the key arrived within ",
                                                  absl::FormatDuration(options_.max_wait));
    for (const Event& event : waiting.Get()) {
      OperatorMetrics::Add(internal::ContextAccess::Metrics(ctx).late_records, 1);
      if (options_.unmatched) ctx.Output(*options_.unmatched, Unmatched<Event>{event, reason});
    }
    waiting.Clear();
    ctx.GetState(kDeadline).Clear();
    return absl::OkStatus();
  }

 private:
  using OperatorMetrics = internal::OperatorMetrics;
  static inline const MapStateDescriptor<K, Row> kRows{"join-rows"};
  static inline const ListStateDescriptor<Event> kWaiting{"join-waiting"};
  static inline const ValueStateDescriptor<Timestamp> kDeadline{"join-deadline"};

  JoinFn join_;
  EnrichmentJoinOptions<Event> options_;
};

}  // namespace weir

#endif  // WEIR_JOIN_H_
