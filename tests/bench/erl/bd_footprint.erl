%%% @doc Loaded into the measured node by tests/bench/footprint.ts: the host
%%% load (idle processes, a message-passing workload), the floor loop, the
%%% scheduler-time windows and the agent's memory. Measures from outside the
%%% agent; nothing here calls the agent's own code.
-module(bd_footprint).

-export([mem_watch_pause/1]).
-export([spawn_idle/1, kill_idle/0, idle/0, window/1, windows/1, floor_start/0, floor_stop/0,
         agent_memory/0, hot/1, hot_stop/0, etop_us/1, ring_start/2, ring_count/0,
         ring_stop/0, agent_stop/0, agent_start/0, profile/2, mem_watch_start/1,
         mem_watch_stop/0, breakdown/1]).

-define(HOLDER, bd_fp_holder).
-define(FLOOR, bd_fp_floor).
-define(RING, bd_fp_ring).
-define(PEERS, bd_fp_peers).
-define(HOT, bd_fp_hot).
-define(MEM_WATCH, bd_fp_mem_watch).

%% @doc Spawn `N' idle, hibernated processes (one in 100 holds 1..20
%% messages), kept by a registered holder so they outlive the rpc.
-spec spawn_idle(pos_integer()) -> non_neg_integer().
spawn_idle(N) ->
    Self = self(),
    H = spawn(fun() ->
                      Ps = [spawn_one(I) || I <- lists:seq(1, N)],
                      Self ! {spawned, self()},
                      receive stop -> [exit(P, kill) || P <- Ps] end
              end),
    register(?HOLDER, H),
    receive {spawned, H} -> ok end,
    erlang:system_info(process_count).

spawn_one(I) ->
    P = spawn(fun() -> erlang:hibernate(?MODULE, idle, []) end),
    _ = case I rem 100 of
            0 -> [P ! {m, K} || K <- lists:seq(1, 1 + I rem 20)];
            _ -> ok
        end,
    P.

%% @doc The idle processes' hibernation entry: they wait for nothing.
-spec idle() -> ok.
idle() -> receive never -> ok end.

%% @doc End the idle processes.
-spec kill_idle() -> ok.
kill_idle() ->
    ?HOLDER ! stop,
    ok.

%% @doc Busy time of every scheduler (normal and dirty CPU) over `Ms', as a
%% share of one scheduler (1.0 = one scheduler busy the whole window).
-spec window(pos_integer()) -> float().
window(Ms) ->
    _ = erlang:system_flag(scheduler_wall_time, true),
    A = lists:sort(erlang:statistics(scheduler_wall_time_all)),
    timer:sleep(Ms),
    B = lists:sort(erlang:statistics(scheduler_wall_time_all)),
    Cpu = erlang:system_info(schedulers) + erlang:system_info(dirty_cpu_schedulers),
    Pairs = [{A1, T1, A2, T2} || {{I, A1, T1}, {I, A2, T2}} <- lists:zip(A, B), I =< Cpu],
    Active = lists:sum([A2 - A1 || {A1, _, A2, _} <- Pairs]),
    Total = lists:sum([T2 - T1 || {_, T1, _, T2} <- Pairs]) / length(Pairs),
    Active / Total.

%% @doc window/1 and, over the same `Ms', the node's CPU time
%% (`statistics(runtime)': every thread of the runtime) as a share of one
%% core: `[Busy, Cpu]'. On a host shared with other work, busy wall time
%% also counts the time the OS gave a busy scheduler's thread to others;
%% CPU time does not, so the two side by side show how much is load.
-spec windows(pos_integer()) -> [float()].
windows(Ms) ->
    {R0, _} = erlang:statistics(runtime),
    Busy = window(Ms),
    {R1, _} = erlang:statistics(runtime),
    [Busy, (R1 - R0) / Ms].

%% @doc The floor: one `message_queue_len' pass over `erlang:processes()' a second.
-spec floor_start() -> ok.
floor_start() ->
    P = spawn(fun floor_loop/0),
    register(?FLOOR, P),
    ok.

floor_loop() ->
    _ = floor_pass(erlang:processes(), 0),
    receive stop -> ok after 1000 -> floor_loop() end.

floor_pass([], Acc) -> Acc;
floor_pass([P | Ps], Acc) ->
    case erlang:process_info(P, message_queue_len) of
        {message_queue_len, 0} -> floor_pass(Ps, Acc);
        {message_queue_len, L} -> floor_pass(Ps, Acc + L);
        undefined -> floor_pass(Ps, Acc)
    end.

%% @doc Stop the floor loop.
-spec floor_stop() -> ok.
floor_stop() ->
    ?FLOOR ! stop,
    ok.

%% @doc The agent's memory in bytes: its processes (the application's group
%% leader identifies them), the ETS tables they own, and the off-heap
%% binaries they reference (each counted once).
-spec agent_memory() -> #{atom() => non_neg_integer()}.
agent_memory() ->
    memory_of(agent_procs()).

memory_of(Procs) ->
    ProcMem = lists:sum([M || P <- Procs, {memory, M} <- [process_info(P, memory)]]),
    Owned = maps:from_keys(Procs, true),
    Ets = lists:sum([ets:info(T, memory) * erlang:system_info(wordsize)
                     || T <- ets:all(), is_map_key(ets:info(T, owner), Owned)]),
    Bins = maps:from_list([{Id, Size} || P <- Procs,
                                         {binary, Bs} <- [process_info(P, binary)],
                                         {Id, Size, _} <- Bs]),
    BinMem = lists:sum(maps:values(Bins)),
    ByProc = lists:sublist(lists:reverse(lists:sort(
                 [{M, name(P)} || P <- Procs, {memory, M} <- [process_info(P, memory)]])), 4),
    #{processes => length(Procs), procBytes => ProcMem, etsBytes => Ets, binBytes => BinMem,
      total => ProcMem + Ets + BinMem,
      largest => [#{name => N, bytes => M} || {M, N} <- ByProc]}.

%% @doc Sample the agent's memory every `Ms' until mem_watch_stop/0: its
%% peak, not a snapshot that may land between two ticks' garbage or just
%% after a hibernation. The agent's processes are found by group leader
%% once (a walk over every process: at 1M it would weigh on the CPU
%% windows every `Ms'); afterwards each sample adds the processes linked to
%% them with the same group leader (workers the agent spawns and links).
-spec mem_watch_start(pos_integer()) -> ok.
mem_watch_start(Ms) ->
    Master = application_controller:get_master(beamdeck_agent),
    P = spawn(fun() -> mem_watch(Ms, Master, agent_procs(), #{total => 0}, 0) end),
    register(?MEM_WATCH, P),
    ok.

mem_watch(Ms, Master, Procs0, Max, N) ->
    Procs = agent_linked(Master, Procs0),
    #{total := T} = Mem = memory_of(Procs),
    Max1 = case T > maps:get(total, Max) of
               true -> Mem;
               false -> Max
           end,
    receive
        {stop, From} -> From ! {?MEM_WATCH, #{peak => Max1, last => Mem, samples => N + 1}};
        {pause, From} ->
            From ! {?MEM_WATCH, paused},
            receive {resume, From2} -> From2 ! {?MEM_WATCH, resumed} end,
            mem_watch(Ms, Master, Procs, Max1, N + 1)
    after Ms -> mem_watch(Ms, Master, Procs, Max1, N + 1)
    end.

%% @doc Pause (`true') or resume (`false') the watcher: its samples cost
%% about as much as the agent at 10k, so none are taken inside a CPU window.
-spec mem_watch_pause(boolean()) -> ok.
mem_watch_pause(Pause) ->
    ?MEM_WATCH ! {case Pause of true -> pause; false -> resume end, self()},
    receive {?MEM_WATCH, _} -> ok after 60000 -> error(mem_watch_timeout) end.

%% The known agent processes still alive, and those linked to them that
%% share their group leader.
agent_linked(Master, Procs) ->
    Alive = [P || P <- Procs, is_process_alive(P)],
    Known = maps:from_keys(Alive, true),
    Linked = lists:usort([L || P <- Alive, {links, Ls} <- [process_info(P, links)], L <- Ls,
                               is_pid(L), node(L) =:= node(), not is_map_key(L, Known),
                               process_info(L, group_leader) =:= {group_leader, Master}]),
    Alive ++ Linked.

%% @doc Stop the watcher: `#{peak, last, samples}', each memory as agent_memory/0.
-spec mem_watch_stop() -> #{atom() => term()}.
mem_watch_stop() ->
    ?MEM_WATCH ! {stop, self()},
    receive {?MEM_WATCH, R} -> R after 60000 -> error(mem_watch_timeout) end.

name(P) ->
    case process_info(P, registered_name) of
        {registered_name, N} when is_atom(N) -> N;
        _ -> list_to_binary(pid_to_list(P))
    end.

agent_procs() ->
    case application_controller:get_master(beamdeck_agent) of
        undefined -> [];
        Master ->
            [P || P <- erlang:processes(),
                  {group_leader, G} <- [process_info(P, group_leader)], G =:= Master]
    end.

%% @doc A process whose mailbox jumps to `N' messages; its pid as text.
-spec hot(pos_integer()) -> binary().
hot(N) ->
    P = spawn(fun() -> receive stop -> ok end end),
    register(?HOT, P),
    [P ! {hot, I} || I <- lists:seq(1, N)],
    list_to_binary(pid_to_list(P)).

%% @doc End the hot process.
-spec hot_stop() -> ok.
hot_stop() ->
    exit(whereis(?HOT), kill),
    ok.

%% @doc Median microseconds of `observer_backend:etop_collect/1', as etop calls it.
-spec etop_us(pos_integer()) -> number().
etop_us(Reps) ->
    Us = [begin
              T0 = erlang:monotonic_time(microsecond),
              %% Synchronous: it sends the collected info to us when done.
              observer_backend:etop_collect(self()),
              receive {Self, Info} when Self =:= self(), element(1, Info) =:= etop_info -> ok
              after 0 -> ok end,
              erlang:monotonic_time(microsecond) - T0
          end || _ <- lists:seq(1, Reps)],
    lists:nth((Reps + 1) div 2, lists:sort(Us)).

%% @doc Host work: `N' processes passing `Tokens' messages to random peers;
%% each delivery bumps a counter (ring_count/0). The peers are a tuple in a
%% persistent term: read without copying (a message would copy it to each).
-spec ring_start(pos_integer(), pos_integer()) -> ok.
ring_start(N, Tokens) ->
    C = counters:new(1, [write_concurrency]),
    Self = self(),
    R = spawn(fun() ->
                      Ps = list_to_tuple([spawn(fun() -> ring_loop(C, N) end) || _ <- lists:seq(1, N)]),
                      persistent_term:put(?PEERS, Ps),
                      [element(rand:uniform(N), Ps) ! token || _ <- lists:seq(1, Tokens)],
                      Self ! {ring, self()},
                      receive stop -> [exit(P, kill) || P <- tuple_to_list(Ps)] end
              end),
    receive {ring, R} -> ok end,
    persistent_term:put(?RING, {R, C}),
    ok.

ring_loop(C, N) ->
    receive token ->
            counters:add(C, 1, 1),
            element(rand:uniform(N), persistent_term:get(?PEERS)) ! token,
            ring_loop(C, N)
    end.

%% @doc Deliveries so far.
-spec ring_count() -> non_neg_integer().
ring_count() ->
    {_, C} = persistent_term:get(?RING),
    counters:get(C, 1).

%% @doc Stop the workload.
-spec ring_stop() -> ok.
ring_stop() ->
    {R, _} = persistent_term:get(?RING),
    R ! stop,
    persistent_term:erase(?RING),
    ok.

%% @doc Stop the whole agent application (the "without" window).
-spec agent_stop() -> ok | {error, term()}.
agent_stop() -> application:stop(beamdeck_agent).

%% @doc Start it again.
-spec agent_start() -> ok | {error, term()}.
agent_start() -> application:ensure_all_started(beamdeck_agent), ok.

%% @doc Where the agent's time goes: eprof over every agent process (and
%% what they spawn: request workers) for `Ms', the analysis by process and
%% by function written to `File'. eprof's tracing slows what it measures,
%% so this attributes shares; the windows above give the absolute cost.
-spec profile(pos_integer(), string()) -> ok.
profile(Ms, File) ->
    {ok, _} = eprof:start(),
    try
        profiling = eprof:start_profiling(agent_procs(), {'_', '_', '_'}, [{set_on_spawn, true}]),
        timer:sleep(Ms),
        profiling_stopped = eprof:stop_profiling(),
        ok = eprof:log(File),
        _ = eprof:analyze(procs, [{sort, time}]),
        _ = eprof:analyze(total, [{sort, time}]),
        ok
    after
        eprof:stop()
    end.

%% @doc Where the agent's time goes, per process, over `Ms': the time each
%% agent process was scheduled in (`running' trace, in/out timestamps),
%% its reductions, and the node's CPU time (`statistics(runtime)') over the
%% same window. Names are registered names, else the initial call. The trace
%% costs a message per schedule; the agent's processes are scheduled in a
%% few times a second, so it disturbs little (unlike eprof).
-spec breakdown(pos_integer()) -> #{atom() => term()}.
breakdown(Ms) ->
    Procs = agent_procs(),
    Self = self(),
    Tracer = spawn(fun() -> tracer(Self, #{}) end),
    Reds0 = [{P, reds(P)} || P <- Procs],
    {R0, _} = erlang:statistics(runtime),
    %% set_on_spawn: request workers the connection starts are counted too
    %% (as "workers": they are gone before their reductions can be read).
    _ = [trace(P, true, [running, procs, set_on_spawn, monotonic_timestamp, {tracer, Tracer}]) || P <- Procs],
    timer:sleep(Ms),
    _ = [trace(P, false, [running, procs, set_on_spawn]) || P <- Procs],
    {R1, _} = erlang:statistics(runtime),
    Tracer ! {done, self()},
    OnCpu = receive {on_cpu, Map} -> Map after 5000 -> #{} end,
    Known = maps:from_list(Reds0),
    %% Workers by what they were spawned to run.
    Workers = lists:foldl(fun({P, U}, Acc) when is_pid(P) ->
                                  case is_map_key(P, Known) of
                                      true -> Acc;
                                      false ->
                                          K = maps:get({mfa, P}, OnCpu, unknown),
                                          maps:update_with(K, fun(X) -> X + U end, U, Acc)
                                  end;
                             (_, Acc) -> Acc
                          end, #{}, maps:to_list(OnCpu)),
    Rows = lists:reverse(lists:sort(
             [{maps:get(P, OnCpu, 0) div 1000, reds(P) - R, name(P, initial(P))} || {P, R} <- Reds0]
             ++ [{U div 1000, 0, iolist_to_binary(io_lib:format("workers ~0p", [K]))}
                 || {K, U} <- maps:to_list(Workers)])),
    #{runtimeMs => R1 - R0, windowMs => Ms,
      procs => [#{name => N, onCpuUs => U, reductions => Rd} || {U, Rd, N} <- Rows, U > 0 orelse Rd > 0]}.

%% A process may have exited since the list was made.
trace(P, On, Flags) ->
    try erlang:trace(P, On, Flags) catch error:badarg -> 0 end.

reds(P) ->
    case process_info(P, reductions) of
        {reductions, R} -> R;
        undefined -> 0
    end.

initial(P) ->
    case process_info(P, dictionary) of
        {dictionary, D} ->
            case proplists:get_value('$initial_call', D) of
                {M, F, A} -> iolist_to_binary(io_lib:format("~p:~p/~p", [M, F, A]));
                _ -> list_to_binary(pid_to_list(P))
            end;
        _ -> list_to_binary(pid_to_list(P))
    end.

name(P, Default) ->
    case process_info(P, registered_name) of
        {registered_name, N} when is_atom(N) -> N;
        _ -> Default
    end.

%% Sum of in->out stretches per pid, in nanoseconds (monotonic native is ns on Linux).
tracer(Parent, Acc) ->
    receive
        {trace_ts, P, in, _, T} -> tracer(Parent, Acc#{{in, P} => T});
        {trace_ts, P, out, _, T} ->
            case maps:take({in, P}, Acc) of
                {T0, Acc1} ->
                    Ns = erlang:convert_time_unit(T - T0, native, nanosecond),
                    tracer(Parent, maps:update_with(P, fun(X) -> X + Ns end, Ns, Acc1));
                error -> tracer(Parent, Acc)
            end;
        {trace_ts, _Parent, spawn, P, {erlang, apply, [Fun | _]}, _T} when is_function(Fun) ->
            {module, M} = erlang:fun_info(Fun, module),
            {name, F} = erlang:fun_info(Fun, name),
            tracer(Parent, Acc#{{mfa, P} => {M, F}});
        {trace_ts, _Parent, spawn, P, {M, F, Args}, _T} ->
            tracer(Parent, Acc#{{mfa, P} => {M, F, length(Args)}});
        {done, From} ->
            From ! {on_cpu, maps:filter(fun(K, _) -> not is_tuple(K) orelse element(1, K) =:= mfa end, Acc)};
        _ -> tracer(Parent, Acc)
    end.
