%%% @doc What an upgrade preview costs at 10k and 100k processes.
%%%
%%% Run from the repository root (one command; builds into /tmp/bd_preview_bench):
%%%
%%%   mkdir -p /tmp/bd_preview_bench && erlc -o /tmp/bd_preview_bench agent/src/beamdeck_agent_terms.erl agent/src/beamdeck_agent_otp.erl agent/src/beamdeck_agent_findings.erl agent/src/beamdeck_agent_beam*.erl agent/src/beamdeck_agent_lint*.erl agent/src/beamdeck_agent_release.erl agent/src/beamdeck_agent_relup.erl agent/src/beamdeck_agent_preview.erl agent/bench/beamdeck_agent_preview_bench.erl && erl -noshell +P 1000000 -pa /tmp/bd_preview_bench -eval 'beamdeck_agent_preview_bench:main(), halt().'
%%%
%%% (`npm run bench' compiles and runs it too.) The node gets N processes:
%%% half idle in a bare `receive', half in a five-frame stack holding a
%%% small state (like a behaviour's loop); among them 100 processes loop in
%%% the module being upgraded (50 through a local call, 50 fully qualified),
%%% 100 hold a fun of it, and 20 run the lingering old code of a second
%%% module (so the check_process_code pass runs too). Measured, as the
%%% median of several passes:
%%% <ol type="a">
%%% <li>floor: `process_info(P, backtrace)' of every process, nothing else;</li>
%%% <li>the scan alone (`beamdeck_agent_scan:scan/2'), one worker and
%%%     the default workers;</li>
%%% <li>the whole preview (`beamdeck_agent_preview:preview/2': scan, fates,
%%%     and the JSON of the listed processes);</li>
%%% <li>the `old_code' request (`beamdeck_agent_scan:old_code/1').</li>
%%% </ol>
%%% It prints a table and one `BENCH_JSON {...}' line. A benchmark reports;
%%% it does not pass or fail (the goal is a preview under 2 s at 100k).
-module(beamdeck_agent_preview_bench).

-export([main/0, run/1]).

-define(SIZES, [10000, 100000]).
-define(GOAL_MS, 2000).

-define(TARGET, "
-module(bd_bench_target).
-export([loop/1, ext_loop/1, mkfun/0]).
loop(S) -> receive {get, P} -> P ! S, loop(S) end.
ext_loop(S) -> receive {get, P} -> P ! S, ?MODULE:ext_loop(S) end.
mkfun() -> fun() -> ok end.
").

-define(OLD, "
-module(bd_bench_old).
-export([loop/1]).
loop(S) -> receive {get, P} -> P ! S, loop(S) end.
").

-define(FILLER, "
-module(bd_bench_filler).
-export([idle/0, deep/1, hold/1]).
idle() -> receive stop -> ok end.
deep(S) -> d1(S, #{name => S, count => 0, opts => [a, b, c]}).
d1(S, M) -> R = d2(S, M), {R, M}.
d2(S, M) -> R = d3(S, M), {R, S}.
d3(S, M) -> R = d4(S, M), [R].
d4(_S, M) -> receive stop -> M end.
hold(F) -> receive stop -> F end.
").

%% @doc Run the whole benchmark and print the results.
-spec main() -> ok.
main() ->
    io:format("beamdeck agent upgrade preview benchmark (OTP ~s, ~b schedulers)~n",
              [erlang:system_info(otp_release), erlang:system_info(schedulers_online)]),
    Dir = filename:join("/tmp", "bd_preview_bench_mods_" ++ os:getpid()),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    try
        load(Dir, ?TARGET),
        load(Dir, ?FILLER),
        load(Dir, ?OLD),
        %% 20 processes on bd_bench_old, then a reload: they run old code.
        Old = [spawn(bd_bench_old, loop, [I]) || I <- lists:seq(1, 20)],
        timer:sleep(10),
        load(Dir, ?OLD),
        Special = [spawn(bd_bench_target, loop, [I]) || I <- lists:seq(1, 50)]
                  ++ [spawn(bd_bench_target, ext_loop, [I]) || I <- lists:seq(1, 50)]
                  ++ [spawn(bd_bench_filler, hold, [bd_bench_target:mkfun()]) || _ <- lists:seq(1, 100)],
        {Results, Filler} = lists:mapfoldl(fun(N, Held) ->
                                                   Held1 = top_up(N, Held),
                                                   {run(N), Held1}
                                           end, [], ?SIZES),
        [exit(P, kill) || P <- Filler ++ Special ++ Old],
        print(Results),
        io:format("BENCH_JSON ~s~n", [json(#{sizes => Results, goalMs => ?GOAL_MS})])
    after
        os:cmd("rm -rf " ++ Dir)
    end,
    ok.

%% @doc Measure with the processes that exist now (`N' is the label).
-spec run(N) -> map() when N :: pos_integer().
run(N) ->
    Procs = erlang:system_info(process_count),
    Reps = case Procs > 50000 of true -> 5; false -> 9 end,
    Script = [{load, {bd_bench_target, brutal_purge, brutal_purge}},
              {load, {bd_bench_old, brutal_purge, brutal_purge}}],
    Loops = #{bd_bench_target => [{<<"loop">>, 1}],
              bd_bench_old => [{<<"loop">>, 1}]},
    Mods = [bd_bench_target, bd_bench_old],
    Workers = max(1, min(8, erlang:system_info(schedulers_online))),
    Floor = median(Reps, fun() -> floor_loop(erlang:processes()) end),
    Scan1 = median(Reps, fun() -> beamdeck_agent_scan:scan(Mods, #{old => [bd_bench_old], workers => 1}) end),
    ScanW = median(Reps, fun() -> beamdeck_agent_scan:scan(Mods, #{old => [bd_bench_old], workers => Workers}) end),
    Preview = median(Reps, fun() ->
                                   #{modules := Ms} = beamdeck_agent_preview:preview(Script, #{loops => Loops}),
                                   [beamdeck_agent_preview:process_json(E) || #{entries := Es} <- Ms, E <- Es]
                           end),
    OldCode = median(Reps, fun() -> beamdeck_agent_scan:old_code([bd_bench_old]) end),
    #{preview := P} = check(Script, Loops),
    #{label => N, processes => Procs, workers => Workers,
      floorMs => ms(Floor), scan1Ms => ms(Scan1), scanMs => ms(ScanW),
      previewMs => ms(Preview), oldCodeMs => ms(OldCode), fates => P}.

%% The preview's own counts, so a table shows it found what is there.
check(Script, Loops) ->
    #{modules := Ms} = beamdeck_agent_preview:preview(Script, #{loops => Loops}),
    Fates = lists:foldl(fun(#{fate := F}, Acc) -> maps:update_with(F, fun(C) -> C + 1 end, 1, Acc) end,
                        #{}, [E || #{entries := Es} <- Ms, E <- Es]),
    #{preview => Fates}.

floor_loop([]) -> ok;
floor_loop([P | T]) ->
    _ = process_info(P, backtrace),
    floor_loop(T).

%% Median wall time (µs) of Reps runs, each in a fresh process.
median(Reps, Fun) ->
    Ts = lists:sort([begin
                         Self = self(),
                         {Pid, Ref} = spawn_monitor(fun() ->
                                                            {T, _} = timer:tc(Fun),
                                                            Self ! {t, self(), T}
                                                    end),
                         T = receive {t, Pid, X} -> X end,
                         receive {'DOWN', Ref, _, _, _} -> ok end,
                         T
                     end || _ <- lists:seq(1, Reps)]),
    lists:nth((Reps + 1) div 2, Ts).

ms(Us) -> round(Us / 100) / 10.

top_up(N, Held) ->
    Missing = N - erlang:system_info(process_count),
    New = [case I rem 2 of
               0 -> spawn(bd_bench_filler, idle, []);
               1 -> spawn(bd_bench_filler, deep, [I])
           end || I <- lists:seq(1, max(0, Missing))],
    New ++ Held.

load(Dir, Source) ->
    {match, [Name]} = re:run(Source, "-module\\(([a-z_]+)\\)", [{capture, all_but_first, list}]),
    File = filename:join(Dir, Name ++ ".erl"),
    ok = file:write_file(File, Source),
    {ok, Mod, Bin} = compile:file(File, [binary, debug_info, return_errors]),
    {module, Mod} = code:load_binary(Mod, filename:join(Dir, Name ++ ".beam"), Bin).

print(Results) ->
    io:format("~n~-10s ~10s ~8s ~10s ~10s ~10s ~10s ~10s~n",
              ["size", "processes", "workers", "floor ms", "scan(1)", "scan(W)", "preview", "old_code"]),
    [io:format("~-10b ~10b ~8b ~10.1f ~10.1f ~10.1f ~10.1f ~10.1f~n",
               [L, P, W, F, S1, SW, Pr, O])
     || #{label := L, processes := P, workers := W, floorMs := F, scan1Ms := S1, scanMs := SW,
          previewMs := Pr, oldCodeMs := O} <- Results],
    [io:format("fates at ~b: ~p~n", [L, Fates]) || #{label := L, fates := Fates} <- Results],
    [#{previewMs := P100} | _] = lists:reverse(Results),
    io:format("goal: preview < ~b ms at 100k processes: ~s (~.1f ms)~n",
              [?GOAL_MS, case P100 < ?GOAL_MS of true -> "met"; false -> "NOT met" end, P100]).

json(Results) ->
    iolist_to_binary(json_value(Results)).

json_value(M) when is_map(M) ->
    ["{", lists:join(",", [[json_value(atom_to_binary(K, utf8)), ":", json_value(V)]
                           || {K, V} <- lists:sort(maps:to_list(M))]), "}"];
json_value(L) when is_list(L) -> ["[", lists:join(",", [json_value(V) || V <- L]), "]"];
json_value(B) when is_binary(B) -> ["\"", B, "\""];
json_value(A) when is_atom(A) -> json_value(atom_to_binary(A, utf8));
json_value(I) when is_integer(I) -> integer_to_binary(I);
json_value(F) when is_float(F) -> float_to_binary(F, [short]).
