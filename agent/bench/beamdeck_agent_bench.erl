%%% @doc What the sampler costs, against the floor and against etop.
%%%
%%% Run from the repository root (one command; builds into /tmp/bd_bench):
%%%
%%%   mkdir -p /tmp/bd_bench && erlc -o /tmp/bd_bench agent/src/beamdeck_agent_terms.erl agent/src/beamdeck_agent_otp.erl agent/src/beamdeck_agent_config.erl agent/src/beamdeck_agent_procinfo.erl agent/src/beamdeck_agent_tree.erl agent/src/beamdeck_agent_sampler.erl agent/bench/beamdeck_agent_bench.erl && erl -noshell -pa /tmp/bd_bench -eval 'beamdeck_agent_bench:main(), halt().'
%%%
%%% In one run it spawns 10k and then 100k idle processes (1 % of them hold
%%% 1..20 messages) and measures, as the median of several passes:
%%% <ol type="a">
%%% <li>floor: a bare loop of `process_info(P, message_queue_len)' over
%%%     `erlang:processes()';</li>
%%% <li>the cheap mailbox scan alone (`beamdeck_agent_procinfo:mailbox_scan/1'),
%%%     and the sampler's fused scan (mailboxes + membership + slice);</li>
%%% <li>a full sample: a reset, full records of every process;</li>
%%% <li>one normal adaptive tick (`beamdeck_agent_sampler:sample/1' on a
%%%     warm state);</li>
%%% <li>`observer_backend:etop_collect/1', called as etop does.</li>
%%% </ol>
%%% It prints a table, the adaptive interval and CPU share at each size, the
%%% goals, and one `BENCH_JSON {...}' line. A benchmark reports; it does not
%%% pass or fail.
-module(beamdeck_agent_bench).

-export([main/0, run/1]).

-define(SIZES, [10000, 100000]).
-define(MAIL_SHARE, 100).  % one process in 100 holds messages

%% @doc Run the whole benchmark and print the results.
-spec main() -> ok.
main() ->
    io:format("beamdeck agent sampler benchmark (OTP ~s, ~b schedulers)~n",
              [erlang:system_info(otp_release), erlang:system_info(schedulers_online)]),
    {Results, Pids} = lists:mapfoldl(fun(N, Held) ->
                                            Held1 = top_up(N, Held),
                                            {run(N), Held1}
                                    end, [], ?SIZES),
    [exit(P, kill) || P <- Pids],
    Goals = goals(Results),
    print_goals(Goals),
    io:format("BENCH_JSON ~s~n", [json(#{sizes => Results, goals => Goals})]),
    ok.

%% @doc Measure every pass with the processes that exist now (`N' is the label).
-spec run(N) -> map() when N :: pos_integer().
run(N) ->
    Procs = erlang:system_info(process_count),
    Reps = case Procs > 50000 of true -> 5; false -> 9 end,
    SlowReps = case Procs > 50000 of true -> 3; false -> 5 end,
    {NZ, _} = beamdeck_agent_procinfo:mailbox_scan(#{}),
    Walk = erlang:processes(),
    Known = maps:from_keys(Walk, x),
    %% The three scans take turns, each pass in a fresh process, so that
    %% drift and garbage collection of this process weigh on all alike.
    [Floor, Scan, Fused] =
        medians(Reps, [fun() -> floor_loop(erlang:processes(), 0) end,
                       fun() -> beamdeck_agent_procinfo:mailbox_scan(NZ) end,
                       fun() -> beamdeck_agent_procinfo:scan(Known, Walk, 0, 1000) end]),
    %% Full sample: a reset pass over every process.
    [Full] = medians(SlowReps, [fun() -> beamdeck_agent_sampler:sample(beamdeck_agent_sampler:new()) end]),
    {TickUs, Interval} = in_process(fun() -> ticks(4 * Reps + 1) end),
    Etop = etop(SlowReps),
    Row = fun(Us) -> #{us => Us, usPerProc => Us / Procs, vsFloor => Us / Floor,
                       vsEtop => Us / Etop} end,
    R = #{n => N, processes => Procs, floor => Row(Floor), mailboxScan => Row(Scan),
          fusedScan => Row(Fused), fullSample => Row(Full), tick => Row(TickUs),
          etop => Row(Etop), intervalMs => Interval,
          cpuShare => TickUs / (Interval * 1000)},
    print(R),
    R.

%%% Passes %%%

floor_loop([], Acc) -> Acc;
floor_loop([P | Ps], Acc) ->
    case erlang:process_info(P, message_queue_len) of
        {message_queue_len, 0} -> floor_loop(Ps, Acc);
        {message_queue_len, L} -> floor_loop(Ps, Acc + L);
        undefined -> floor_loop(Ps, Acc)
    end.

%% Consecutive normal ticks from a warm state, in one process as in the
%% sampler; the median tick cost and the interval the sampler chose after it.
ticks(Reps) ->
    {_, S00} = beamdeck_agent_sampler:sample(beamdeck_agent_sampler:new()),
    %% Steady state: the garbage of the reset collected, ten ticks done.
    erlang:garbage_collect(),
    S0 = lists:foldl(fun(_, S) -> element(2, beamdeck_agent_sampler:sample(S)) end,
                     S00, lists:seq(1, 10)),
    {Samples, _} = lists:mapfoldl(
                     fun(_, S) ->
                             {Us, {Frames, S1}} = timer:tc(beamdeck_agent_sampler, sample, [S]),
                             #{stats := #{intervalMs := I}} = hd(Frames),
                             {{Us, I}, S1}
                     end, S0, lists:seq(1, Reps)),
    Sorted = lists:sort(Samples),
    lists:nth((length(Sorted) + 1) div 2, Sorted).

%% etop's collector runs in its own process, as etop does; the collector
%% here is stopped afterwards so that the scheduler_wall_time flag that
%% etop_collect turns on is off again for the next measurements.
etop(Reps) ->
    Self = self(),
    Collector = spawn(fun() -> etop_collector(Self) end),
    Pass = fun() ->
                   Pid = spawn(observer_backend, etop_collect, [Collector]),
                   receive {etop_done, Pid} -> ok after 60000 -> error(etop_timeout) end
           end,
    Pass(),  % warm-up: the first call also turns scheduler_wall_time on
    Ts = lists:sort([element(1, timer:tc(Pass)) || _ <- lists:seq(1, Reps)]),
    Us = lists:nth((Reps + 1) div 2, Ts),
    exit(Collector, kill),
    timer:sleep(50),
    Us.

etop_collector(Bench) ->
    receive
        {Pid, _Info} when is_pid(Pid) -> Bench ! {etop_done, Pid}
    end,
    etop_collector(Bench).

%% The median time of each fun; each rep runs every fun in turn, each in a
%% fresh process (one warm-up pass, then the timed pass).
medians(Reps, Funs) ->
    Runs = [[in_process(fun() -> _ = F(), element(1, timer:tc(F)) end) || F <- Funs]
            || _ <- lists:seq(1, Reps)],
    [lists:nth((Reps + 1) div 2, lists:sort(Col)) || Col <- transpose(Runs)].

transpose([[] | _]) -> [];
transpose(Rows) -> [[hd(R) || R <- Rows] | transpose([tl(R) || R <- Rows])].

in_process(Fun) ->
    Self = self(),
    {Pid, Ref} = spawn_monitor(fun() -> Self ! {self(), Fun()} end),
    receive {Pid, Result} -> demonitor(Ref, [flush]), Result;
            {'DOWN', Ref, process, Pid, Reason} -> error(Reason)
    end.

%%% Processes %%%

%% Spawn idle processes until `N' exist besides the ones held already.
top_up(N, Held) ->
    New = [spawn_idle(I) || I <- lists:seq(length(Held) + 1, N)],
    timer:sleep(200),
    New ++ Held.

spawn_idle(I) ->
    P = spawn(fun() -> receive stop -> ok end end),
    _ = case I rem ?MAIL_SHARE of
            0 -> [P ! {msg, J} || J <- lists:seq(1, 1 + I rem 20)];
            _ -> ok
        end,
    P.

%%% Output %%%

print(#{n := N, processes := Procs, intervalMs := I, cpuShare := Share} = R) ->
    io:format("~n~b idle processes (~b in total)~n", [N, Procs]),
    io:format("  ~-40s ~12s ~10s ~9s ~9s~n", ["pass", "us/pass", "us/proc", "x floor", "x etop"]),
    [begin
         #{us := Us, usPerProc := PP, vsFloor := VF, vsEtop := VE} = maps:get(K, R),
         io:format("  ~-40s ~12b ~10.3f ~9.2f ~9.3f~n", [Label, Us, PP, VF, VE])
     end || {K, Label} <- [{floor, "(a) floor: process_info mq_len loop"},
                           {mailboxScan, "(b) cheap mailbox scan"},
                           {fusedScan, "(b') sampler scan (+membership)"},
                           {fullSample, "(c) full sample (reset)"},
                           {tick, "(d) one adaptive tick"},
                           {etop, "(e) observer_backend:etop_collect"}]],
    io:format("  adaptive interval ~b ms; CPU share of one scheduler ~.3f %~n",
              [I, Share * 100]).

goals(Results) ->
    [R10, R100] = Results,
    Scan = fun(R) -> maps:get(vsFloor, maps:get(mailboxScan, R)) end,
    Etop = fun(R) -> 1 / maps:get(vsEtop, maps:get(mailboxScan, R)) end,
    #{mailboxScanVsFloor10k => Scan(R10), mailboxScanVsFloor100k => Scan(R100),
      etopOverRefresh10k => Etop(R10), etopOverRefresh100k => Etop(R100),
      cpuShare10k => maps:get(cpuShare, R10), cpuShare100k => maps:get(cpuShare, R100),
      met => #{mailboxScan => Scan(R10) =< 1.5 andalso Scan(R100) =< 1.5,
               refreshVsEtop => Etop(R10) >= 10 andalso Etop(R100) >= 10,
               overhead10k => maps:get(cpuShare, R10) =< 0.01,
               overhead100k => maps:get(cpuShare, R100) =< 0.05}}.

print_goals(#{met := Met} = G) ->
    Yes = fun(K) -> case maps:get(K, Met) of true -> "met"; false -> "NOT met" end end,
    io:format("~ngoals~n"),
    io:format("  mailbox scan <= 1.5x floor:        ~.2fx (10k), ~.2fx (100k)  ~s~n",
              [maps:get(mailboxScanVsFloor10k, G), maps:get(mailboxScanVsFloor100k, G),
               Yes(mailboxScan)]),
    io:format("  refresh >= 10x cheaper than etop:  ~.1fx (10k), ~.1fx (100k)  ~s~n",
              [maps:get(etopOverRefresh10k, G), maps:get(etopOverRefresh100k, G),
               Yes(refreshVsEtop)]),
    io:format("  overhead <= 1 % at 10k:            ~.3f %  ~s~n",
              [maps:get(cpuShare10k, G) * 100, Yes(overhead10k)]),
    io:format("  overhead <= 5 % at 100k:           ~.3f %  ~s~n",
              [maps:get(cpuShare100k, G) * 100, Yes(overhead100k)]).

%% Just enough JSON for the result (maps, lists, numbers, booleans, atoms).
json(M) when is_map(M) ->
    ["{", lists:join(",", [[json(K), ":", json(V)] || {K, V} <- lists:sort(maps:to_list(M))]), "}"];
json(L) when is_list(L) -> ["[", lists:join(",", [json(X) || X <- L]), "]"];
json(true) -> "true";
json(false) -> "false";
json(A) when is_atom(A) -> ["\"", atom_to_list(A), "\""];
json(I) when is_integer(I) -> integer_to_list(I);
json(F) when is_float(F) -> float_to_list(F, [{decimals, 4}, compact]).
