%%% @doc Deaths around an upgrade step, predicted and actual: the one place
%%% where the preview's prediction is compared with who really died. The
%%% step watches every process the preview names (and those linked to them:
%%% a kill spreads along links) and collects the DOWN messages until things
%%% settle.
-module(beamdeck_agent_deaths).

-export([predicted/2, watch_pids/1, watch/1, deaths/2]).

-define(SETTLE_MS, 300).
-define(MAX_SETTLE_MS, 3000).
-define(MAX_WATCH, 20000).
-define(MAX_DEATHS, 500).

-type monitors() :: #{reference() => {pid(), map()}}.
-export_type([monitors/0]).

%% @doc The pids the preview says are killed at step `When'.
-spec predicted(Preview, When) -> [pid()] when Preview :: map(), When :: install | make_permanent.
predicted(#{modules := Mods}, When) ->
    lists:usort([P || #{entries := Es} <- Mods, #{pid := P, fate := killed, 'when' := W} <- Es,
                      W =:= When]).

%% @doc Processes to watch around a step: every process the preview names
%% and those linked to them (a kill spreads along links), bounded.
-spec watch_pids(Preview) -> [pid()] when Preview :: map().
watch_pids(#{modules := Mods}) ->
    Named = lists:usort([P || #{entries := Es} <- Mods, #{pid := P} <- Es]
                        ++ [P || #{suspended_pids := Ps} <- Mods, P <- Ps]),
    Linked = [L || P <- Named, {links, Ls} <- [process_info(P, links)], L <- Ls, is_pid(L),
                   node(L) =:= node()],
    lists:sublist(lists:usort(Named ++ Linked) -- [self()], ?MAX_WATCH).

%% @doc Monitor `Pids', each with its name and initial call (read now:
%% after its death there is nothing to read).
-spec watch(Pids) -> monitors() when Pids :: [pid()].
watch(Pids) ->
    maps:from_list([{erlang:monitor(process, P), {P, describe(P)}} || P <- Pids]).

describe(P) ->
    case process_info(P, [registered_name]) of
        [{registered_name, N}] when is_atom(N) ->
            #{name => beamdeck_agent_terms:maybe_atom(N), initialCall => beamdeck_agent_terms:initial_call(P)};
        _ -> #{name => null, initialCall => beamdeck_agent_terms:initial_call(P)}
    end.

%% @doc Collect the DOWN messages of watched processes until things settle,
%% and compare with `Predicted': predicted and died, predicted but alive,
%% died unpredicted (each list capped), and the counts.
-spec deaths(Monitors, Predicted) -> map() when Monitors :: monitors(), Predicted :: [pid()].
deaths(Mon, Predicted) ->
    Deadline = erlang:monotonic_time(millisecond) + ?MAX_SETTLE_MS,
    Died = settle(Mon, #{}, Deadline),
    _ = [erlang:demonitor(R, [flush]) || R <- maps:keys(Mon), not maps:is_key(R, Died)],
    DiedByPid = maps:from_list([{P, {Info, Reason}} || {_, {P, Info, Reason}} <- maps:to_list(Died)]),
    PredSet = maps:from_list([{P, true} || P <- Predicted]),
    Row = fun(P, Info, Reason) ->
                  Info#{pid => beamdeck_agent_terms:pid(P),
                        reason => case Reason of
                                      none -> null;
                                      _ -> text(Reason)
                                  end}
          end,
    #{predictedAndDied => cap([Row(P, I, R) || {P, {I, R}} <- maps:to_list(DiedByPid),
                                               maps:is_key(P, PredSet)]),
      predictedButAlive => cap([Row(P, describe(P), none) || P <- Predicted,
                                                             not maps:is_key(P, DiedByPid)]),
      diedUnpredicted => cap([Row(P, I, R) || {P, {I, R}} <- maps:to_list(DiedByPid),
                                              not maps:is_key(P, PredSet)]),
      predicted => length(Predicted), died => map_size(DiedByPid), watched => map_size(Mon)}.

settle(Mon, Died, Deadline) ->
    Left = Deadline - erlang:monotonic_time(millisecond),
    receive
        {'DOWN', Ref, process, P, Reason} when is_map_key(Ref, Mon) ->
            {P, Info} = maps:get(Ref, Mon),
            settle(Mon, Died#{Ref => {P, Info, Reason}}, Deadline)
    after min(max(Left, 0), ?SETTLE_MS) ->
        Died
    end.

cap(L) -> lists:sublist(L, ?MAX_DEATHS).

text(T) -> beamdeck_agent_terms:text(T, 2000).
