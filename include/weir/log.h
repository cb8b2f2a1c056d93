// weir's log: what the runtime and the connectors report without failing the
// job (a restore, an abandoned checkpoint, an outage and its end, librdkafka's
// own messages, a replay). By default each line goes to stderr; an
// application that has its own logging routes the lines there instead.
//
// Example:
//
//   weir::SetLogSink([](std::string_view line) { LOG(INFO) << line; });
//   ...
//   weir::SetLogSink(nullptr);  // back to stderr

#ifndef WEIR_LOG_H_
#define WEIR_LOG_H_

#include <functional>
#include <string_view>

namespace weir {

// Receives one line at a time, without its trailing newline, starting with
// "weir: ". Called from any of weir's threads (workers, connector I/O
// threads), one call at a time; it must not call back into weir's logging.
using LogSink = std::function<void(std::string_view line)>;

// Replaces the process-wide sink; null restores the default (stderr).
// Thread-safe: lines logged meanwhile go to the old sink or the new one.
void SetLogSink(LogSink sink);

}  // namespace weir

#endif  // WEIR_LOG_H_
