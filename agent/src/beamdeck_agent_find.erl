%%% @doc Find processes by their code (docs/protocol.md, `find_processes').
%%%
%%% A process runs a module's code when the module is on its stack (the
%%% acceptor of a listener sits in `prim_inet:accept0' called from
%%% `TestListener.start/1') or is its callback module (`$initial_call' of a
%%% proc_lib process: a gen_server waiting in `gen_server:loop' has no frame
%%% of its callback module). Reading every stack is not free, so the walk
%%% has a time budget and a cap on matches and says how far it got
%%% ("scanned N of M"). `current_stacktrace' is as deep as the node's
%%% `backtrace_depth' (8 by default), enough for the frames of a blocked call.
-module(beamdeck_agent_find).

-export([find/1, label/2]).

-define(DEFAULT_BUDGET_MS, 200).
-define(MAX_BUDGET_MS, 2000).
-define(MAX_MATCHES, 1000).
-define(CLOCK_EVERY, 64).
%% Modules of the runtime, never a useful label for a process.
-define(RUNTIME_PREFIXES, [<<"erlang">>, <<"prim_">>, <<"gen">>, <<"proc_lib">>,
                           <<"inet">>, <<"gen_tcp">>, <<"timer">>, <<"erl_">>,
                           <<"Elixir.Task">>, <<"Elixir.Process">>, <<"Elixir.Enum">>,
                           <<"io">>, <<"lists">>, <<"maps">>, <<"code_server">>,
                           <<"supervisor">>, <<"application">>]).

%% @doc Processes whose stack modules or callback module contain
%% `params.module' (case-insensitive; `TestListener' finds
%% `Elixir.TestListener'). `budgetMs' (≤ 2000) bounds the walk, `limit'
%% (≤ 1000) the matches.
-spec find(Params) -> {ok, Result} | {error, bad_request, binary()}
    when Params :: map(), Result :: map().
find(#{<<"module">> := Needle} = Params) when is_binary(Needle), byte_size(Needle) > 0,
                                              byte_size(Needle) =< 200 ->
    Budget = bounded(maps:get(<<"budgetMs">>, Params, ?DEFAULT_BUDGET_MS), 1, ?MAX_BUDGET_MS),
    Limit = bounded(maps:get(<<"limit">>, Params, ?MAX_MATCHES), 1, ?MAX_MATCHES),
    Pids = erlang:processes(),
    Deadline = erlang:monotonic_time(millisecond) + Budget,
    {Scanned, Matches} = walk(Pids, string:lowercase(Needle), Deadline, Limit, 0, []),
    {ok, #{matches => lists:reverse(Matches), scanned => Scanned, total => length(Pids),
           partial => Scanned < length(Pids)}};
find(_) ->
    {error, bad_request, <<"params.module must be a non-empty string of at most 200 bytes">>}.

bounded(N, Min, Max) when is_integer(N) -> max(Min, min(Max, N));
bounded(_, _Min, Max) -> Max.

walk([], _Needle, _Deadline, _Limit, Scanned, Acc) -> {Scanned, Acc};
walk(_, _Needle, _Deadline, 0, Scanned, Acc) -> {Scanned, Acc};
walk([P | Ps], Needle, Deadline, Limit, Scanned, Acc) ->
    case Scanned rem ?CLOCK_EVERY =:= 0 andalso
         erlang:monotonic_time(millisecond) >= Deadline of
        true -> {Scanned, Acc};
        false ->
            case match(P, Needle) of
                [] -> walk(Ps, Needle, Deadline, Limit, Scanned + 1, Acc);
                Hits ->
                    Match = #{pid => beamdeck_agent_terms:pid(P), modules => Hits},
                    walk(Ps, Needle, Deadline, Limit - 1, Scanned + 1, [Match | Acc])
            end
    end.

%% The matching modules of one process, callback module first.
match(P, Needle) ->
    case erlang:process_info(P, current_stacktrace) of
        undefined -> [];
        {current_stacktrace, Frames} ->
            Callback = case beamdeck_agent_procinfo:initial_call(P) of
                           {M, _, _} -> [M];
                           undefined -> []
                       end,
            Mods = unique(Callback ++ [M || {M, _, _, _} <- Frames]),
            [T || T <- [beamdeck_agent_terms:atom(M) || M <- Mods],
                  string:find(string:lowercase(T), Needle) =/= nomatch]
    end.

unique(L) -> unique(L, []).
unique([], Acc) -> lists:reverse(Acc);
unique([X | Xs], Acc) ->
    case lists:member(X, Acc) of
        true -> unique(Xs, Acc);
        false -> unique(Xs, [X | Acc])
    end.

%% @doc A label for a process started from an anonymous fun: the first
%% module on its stack that is not the runtime's (and not the module the
%% fun was written in), or `null'. `InitialCall' is the record's.
-spec label(Pid, InitialCall) -> binary() | null
    when Pid :: pid(), InitialCall :: mfa() | undefined.
label(Pid, {FunMod, Fun, _}) ->
    %% `spawn(Fun)' reports `erlang:apply/2'; proc_lib and Elixir's Task
    %% record the fun's own name, `-start/2-fun-0-'.
    case {FunMod, atom_to_binary(Fun)} of
        {erlang, <<"apply">>} -> stack_label(Pid, FunMod);
        {_, <<"-", _/binary>>} -> stack_label(Pid, FunMod);
        _ -> null
    end;
label(_Pid, _) -> null.

stack_label(Pid, FunMod) ->
    case erlang:process_info(Pid, current_stacktrace) of
        {current_stacktrace, Frames} ->
            Own = [beamdeck_agent_terms:atom(M) || {M, _, _, _} <- Frames, M =/= FunMod],
            case [M || M <- Own, not runtime(M)] of
                [M | _] -> M;
                [] -> null
            end;
        undefined -> null
    end.

runtime(Module) ->
    lists:any(fun(Prefix) -> binary:longest_common_prefix([Module, Prefix]) =:= byte_size(Prefix) end,
              ?RUNTIME_PREFIXES).
