// Type deduction for the Stream API: the output type of a process function
// (from the ProcessFunction base it derives from) and the value of a StatusOr.
// Internal.

#ifndef WEIR_INTERNAL_FUNCTION_TRAITS_H_
#define WEIR_INTERNAL_FUNCTION_TRAITS_H_

#include <type_traits>
#include <utility>

#include "absl/status/statusor.h"
#include "weir/functions.h"

namespace weir::internal {

template <class T>
struct StatusOrValue {
  using type = T;
};
template <class T>
struct StatusOrValue<absl::StatusOr<T>> {
  using type = T;
};

// Deduces OUT from a class derived from ProcessFunction<In, OUT> (etc.).
template <class In, class Out>
Out ProcessOutputOf(const ProcessFunction<In, Out>*);
template <class K, class In, class Out>
Out KeyedProcessOutputOf(const KeyedProcessFunction<K, In, Out>*);
template <class In, class B, class Out>
Out BroadcastProcessOutputOf(const BroadcastProcessFunction<In, B, Out>*);

template <class In, class Fn, class = void>
struct ProcessFnTraits {
  static constexpr bool kValid = false;
  using Out = void;
};
template <class In, class Fn>
struct ProcessFnTraits<In, Fn, std::void_t<decltype(ProcessOutputOf<In>(std::declval<Fn*>()))>> {
  static constexpr bool kValid = true;
  using Out = decltype(ProcessOutputOf<In>(std::declval<Fn*>()));
};
template <class K, class In, class Fn, class = void>
struct KeyedProcessFnTraits {
  static constexpr bool kValid = false;
  using Out = void;
};
template <class K, class In, class Fn>
struct KeyedProcessFnTraits<
    K, In, Fn, std::void_t<decltype(KeyedProcessOutputOf<K, In>(std::declval<Fn*>()))>> {
  static constexpr bool kValid = true;
  using Out = decltype(KeyedProcessOutputOf<K, In>(std::declval<Fn*>()));
};
template <class In, class B, class Fn, class = void>
struct BroadcastProcessFnTraits {
  static constexpr bool kValid = false;
  using Out = void;
};
template <class In, class B, class Fn>
struct BroadcastProcessFnTraits<
    In, B, Fn, std::void_t<decltype(BroadcastProcessOutputOf<In, B>(std::declval<Fn*>()))>> {
  static constexpr bool kValid = true;
  using Out = decltype(BroadcastProcessOutputOf<In, B>(std::declval<Fn*>()));
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_FUNCTION_TRAITS_H_
