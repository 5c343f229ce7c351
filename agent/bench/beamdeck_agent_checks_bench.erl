%%% @doc What the upgrade checks cost (issue 13): every check but the
%%% rehearsal at 10k and 100k processes (goal: < 3 s at 100k), and the
%%% code_change rehearsal per process and for 1,000 processes of one module.
%%%
%%% Run by `npm run bench -- agent' (scripts/bench.ts compiles agent/bench
%%% against agent/_build/default). The node gets N processes: one in 100 is
%%% an unsupervised gen_server of the updated module `bd_bench_srv' (so the
%%% suspend check finds them all), the rest wait in a receive; 100 ETS
%%% tables of 1,000 objects, one holding a fun of the purged module. A
%%% benchmark reports; it does not pass or fail.
-module(beamdeck_agent_checks_bench).

-export([main/0]).

-define(SIZES, [10000, 100000]).
-define(CHECKS, [beamdeck_agent_check_appup, beamdeck_agent_check_suspend,
                 beamdeck_agent_check_funs, beamdeck_agent_check_load_order,
                 beamdeck_agent_check_sys_config, beamdeck_agent_check_nif]).
-define(REHEARSED, 1000).

%% @doc Run the benchmark and print the results.
-spec main() -> ok.
main() ->
    Dir = filename:join("/tmp", "bd-checks-bench-" ++ os:getpid()),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Bin = server_module(),
    ok = file:write_file(filename:join(Dir, "bd_bench_srv.beam"), Bin),
    {module, _} = code:load_binary(bd_bench_srv, "bd_bench_srv.beam", Bin),
    Tables = tables(),
    Ctx = context(Bin),
    {Rows, Held} = lists:mapfoldl(fun(N, Procs) ->
                                          Procs1 = top_up(N, Procs),
                                          {checks_row(N, Ctx), Procs1}
                                  end, [], ?SIZES),
    Rehearsal = rehearsal(Dir, [P || {srv, P} <- Held]),
    [kill(P) || P <- Held],
    [ets:delete(T) || T <- Tables],
    _ = file:del_dir_r(Dir),
    io:format("~nchecks without the rehearsal (ms, one pass; goal < 3000 at 100k):~n"),
    [io:format("  ~7b processes: ~ts total ~b ms~n",
               [N, [io_lib:format("~ts ~b  ", [short(C), Ms]) || {C, Ms} <- Per], Total])
     || #{processes := N, per_check := Per, total_ms := Total} <- Rows],
    io:format("rehearsal: peer start ~b ms, ~b processes in ~b ms (~.2f ms per process)~n",
              [maps:get(peer_start_ms, Rehearsal), maps:get(processes, Rehearsal),
               maps:get(total_ms, Rehearsal), maps:get(per_process_ms, Rehearsal)]),
    io:format("BENCH_JSON ~s~n", [json(Rows, Rehearsal)]),
    ok.

checks_row(N, Ctx) ->
    Per = [{C, timed(fun() -> C:check(Ctx) end)} || C <- ?CHECKS],
    #{processes => N, per_check => Per, total_ms => lists:sum([Ms || {_, Ms} <- Per])}.

timed(Fun) ->
    T0 = erlang:monotonic_time(millisecond),
    _ = Fun(),
    erlang:monotonic_time(millisecond) - T0.

%% One code_change per process, as the rehearsal runs it: the state copied
%% with sys:get_state, code_change called in the peer.
rehearsal(Dir, Srvs) ->
    Clean = filename:join([code:root_dir(), "bin", "start_clean.boot"]),
    {ok, Boot} = file:read_file(Clean),
    ok = file:write_file(filename:join(Dir, "b.boot"), beamdeck_agent_check_peer:boot_without_apps(Boot)),
    T0 = erlang:monotonic_time(millisecond),
    {ok, Peer} = beamdeck_agent_check_peer:start(["-boot", filename:join(Dir, "b"), "-pa", Dir],
                                                 erlang:monotonic_time(millisecond) + 30000),
    T1 = erlang:monotonic_time(millisecond),
    Procs = lists:sublist(Srvs, ?REHEARSED),
    try
        Ms = timed(fun() ->
                           [beamdeck_agent_check_rehearsal:outcome(
                              fun() -> peer:call(Peer, bd_bench_srv, code_change,
                                                 [1, sys:get_state(P, 1000), []], 2000) end,
                              fun({ok, _}) -> ok end) || P <- Procs]
                   end),
        #{peer_start_ms => T1 - T0, processes => length(Procs), total_ms => Ms,
          per_process_ms => Ms / max(1, length(Procs))}
    after beamdeck_agent_check_peer:stop(Peer)
    end.

context(Bin) ->
    Script = [{load_object_code, {bd_bench, "2", [bd_bench_srv]}}, point_of_no_return,
              {suspend, [bd_bench_srv]}, {load, {bd_bench_srv, brutal_purge, brutal_purge}},
              {code_change, up, [{bd_bench_srv, []}]}, {resume, [bd_bench_srv]}],
    #{action => install, script => Script, mods => beamdeck_agent_relup:modules(Script),
      beams => #{bd_bench_srv => Bin}, deadline => erlang:monotonic_time(millisecond) + 60000,
      path => #{from => "1", to => "2", source => dir, from_libs => [], to_libs => []}}.

%% Processes up to N: one in 100 an unsupervised bd_bench_srv.
top_up(N, Held) ->
    Need = N - length(Held),
    New = [case I rem 100 of
               0 -> {ok, P} = gen_server:start(bd_bench_srv, #{items => lists:seq(1, 10)}, []), {srv, P};
               _ -> {idle, spawn(fun() -> receive stop -> ok end end)}
           end || I <- lists:seq(1, max(0, Need))],
    Held ++ New.

kill({_, P}) -> exit(P, kill).

tables() ->
    [begin
         T = ets:new(bd_bench_table, [public]),
         true = ets:insert(T, [{K, K} || K <- lists:seq(1, 1000)]),
         case I of
             1 -> true = ets:insert(T, {fun_here, bd_bench_srv:make_fun()});
             _ -> ok
         end,
         T
     end || I <- lists:seq(1, 100)].

server_module() ->
    Forms = [{attribute, 1, module, bd_bench_srv},
             {attribute, 1, export, [{init, 1}, {handle_call, 3}, {handle_cast, 2}, {code_change, 3},
                                     {make_fun, 0}]},
             {function, 1, init, 1, [{clause, 1, [{var, 1, 'S'}], [], [{tuple, 1, [{atom, 1, ok}, {var, 1, 'S'}]}]}]},
             {function, 1, handle_call, 3,
              [{clause, 1, [{var, 1, '_'}, {var, 1, '_'}, {var, 1, 'S'}], [],
                [{tuple, 1, [{atom, 1, reply}, {atom, 1, ok}, {var, 1, 'S'}]}]}]},
             {function, 1, handle_cast, 2,
              [{clause, 1, [{var, 1, '_'}, {var, 1, 'S'}], [], [{tuple, 1, [{atom, 1, noreply}, {var, 1, 'S'}]}]}]},
             {function, 1, code_change, 3,
              [{clause, 1, [{var, 1, '_'}, {var, 1, 'S'}, {var, 1, '_'}], [],
                [{tuple, 1, [{atom, 1, ok}, {var, 1, 'S'}]}]}]},
             {function, 1, make_fun, 0,
              [{clause, 1, [], [], [{'fun', 1, {clauses, [{clause, 1, [], [], [{atom, 1, ok}]}]}}]}]}],
    {ok, _, Bin} = compile:forms(Forms, [binary]),
    Bin.

short(C) ->
    [_, _, _ | Rest] = string:split(atom_to_list(C), "_", all),
    lists:join("_", Rest).

json(Rows, R) ->
    Row = fun(#{processes := N, per_check := Per, total_ms := T}) ->
                  io_lib:format("{\"processes\":~b,\"totalMs\":~b,~ts}",
                                [N, T, lists:join(",", [io_lib:format("\"~ts\":~b", [short(C), Ms]) || {C, Ms} <- Per])])
          end,
    io_lib:format("{\"checks\":[~ts],\"rehearsal\":{\"peerStartMs\":~b,\"processes\":~b,\"totalMs\":~b,\"perProcessMs\":~.3f}}",
                  [lists:join(",", [Row(X) || X <- Rows]), maps:get(peer_start_ms, R), maps:get(processes, R),
                   maps:get(total_ms, R), float(maps:get(per_process_ms, R))]).
