%%% @doc The walk of the sampler's partial mode (docs/protocol.md, `procs'
%%% `partial: true'): on nodes with more processes than `full_table_max' the
%%% agent keeps no table of every process, only the hot spots.
%%%
%%% One walk reads every mailbox length (the cheap scan, non-zero lengths
%%% kept) and, for a rolling slice of the walk, the memory; it keeps the
%%% slice's N largest by memory. Nothing per process outlives the walk but
%%% those: at 1M processes the walk holds no list of every pid on OTP 28+
%%% (`processes_iterator') and only `erlang:processes/0''s list before.
-module(beamdeck_agent_hotspots).

-export([scan/3, top/2, top_map/3, top_fold/2]).

-export_type([scan/0]).

-type scan() :: #{nonzero := #{pid() => pos_integer()}, total := non_neg_integer(),
                  mem := [pid()]}.

%% @doc Walk every process: non-zero mailboxes, how many were walked, and
%% the `TopN' largest by memory among positions `[Skip, Skip + Take)'.
-spec scan(Skip, Take, TopN) -> scan()
    when Skip :: non_neg_integer(), Take :: non_neg_integer(), TopN :: non_neg_integer().
scan(Skip, Take, TopN) ->
    {NZ, Total, Mem} = walk(beamdeck_agent_procinfo:cursor(), Skip, Take, #{}, 0, []),
    #{nonzero => NZ, total => Total, mem => top(Mem, TopN)}.

walk(C, Skip, Take, NZ, Total, Mem) ->
    case beamdeck_agent_procinfo:next(C) of
        none -> {NZ, Total, Mem};
        {P, Rest} ->
            NZ1 = case erlang:process_info(P, message_queue_len) of
                      {message_queue_len, 0} -> NZ;
                      {message_queue_len, N} -> NZ#{P => N};
                      undefined -> NZ
                  end,
            case Total >= Skip andalso Take > 0 of
                true ->
                    Mem1 = case erlang:process_info(P, memory) of
                               {memory, M} -> [{M, P} | Mem];
                               undefined -> Mem
                           end,
                    walk(Rest, Skip, Take - 1, NZ1, Total + 1, Mem1);
                false ->
                    walk(Rest, Skip, Take, NZ1, Total + 1, Mem)
            end
    end.

%% @doc The pids of the `N' largest `{Value, Pid}' pairs, largest first,
%% without sorting them all: one comparison per pair once `N' are held.
-spec top(Pairs, N) -> [pid()]
    when Pairs :: [{non_neg_integer(), pid()}], N :: integer().
top(_Pairs, N) when N =< 0 -> [];
top(Pairs, N) ->
    {Set, _, _} = lists:foldl(fun(Pair, Acc) -> top_add(Pair, Acc, N) end,
                              {gb_sets:empty(), 0, undefined}, Pairs),
    [P || {_, P} <- lists:reverse(gb_sets:to_list(Set))].

top_add(Pair, {Set, Size, _}, N) when Size < N ->
    Set1 = gb_sets:add(Pair, Set),
    {Set1, Size + 1, gb_sets:smallest(Set1)};
top_add(Pair, {Set, Size, Min}, _N) when Pair > Min ->
    Set1 = gb_sets:add(Pair, gb_sets:delete(Min, Set)),
    {Set1, Size, gb_sets:smallest(Set1)};
top_add(_Pair, Acc, _N) -> Acc.

%% @doc top/2 over a map's values (`Value(V)' is the key compared), without
%% building a list of every pair: at 1M processes that list alone is 40 MB.
-spec top_map(Value, Map, N) -> [pid()]
    when Value :: fun((term()) -> non_neg_integer()), Map :: #{pid() => term()}, N :: integer().
top_map(Value, Map, N) ->
    top_fold(fun(Add, Acc0) -> maps:fold(fun(P, V, Acc) -> Add({Value(V), P}, Acc) end, Acc0, Map) end,
             N).

%% @doc top/2 over any collection that `Fold' walks: `Fold(Add, Acc0)' calls
%% `Add({Value, Pid}, Acc)' for each item and returns the last `Acc'.
-spec top_fold(Fold, N) -> [pid()]
    when Fold :: fun((fun(({non_neg_integer(), pid()}, Acc) -> Acc), Acc) -> Acc),
         Acc :: term(), N :: integer().
top_fold(_Fold, N) when N =< 0 -> [];
top_fold(Fold, N) ->
    {Set, _, _} = Fold(fun(Pair, Acc) -> top_add(Pair, Acc, N) end, {gb_sets:empty(), 0, undefined}),
    [P || {_, P} <- lists:reverse(gb_sets:to_list(Set))].
