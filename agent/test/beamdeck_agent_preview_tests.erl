-module(beamdeck_agent_preview_tests).

-include_lib("eunit/include/eunit.hrl").

%% Every fate the preview predicts is checked against the VM itself: the
%% modules are loaded twice (code:load_binary) to make old code, then purged
%% as release_handler would (code:purge = brutal, code:soft_purge = soft).

-define(A_V1, "
-module(bd_pv_a).
-export([v/0, loop/1, ext_loop/1, mkfun/0, outer/0]).
v() -> 1.
loop(X) -> receive {get, P} -> P ! {v, v()}, loop(X); stop -> ok end.
ext_loop(X) -> receive {get, P} -> P ! {v, v()}, ?MODULE:ext_loop(X); stop -> ok end.
mkfun() -> fun() -> v() end.
outer() -> R = bd_pv_nest:nest(12), {done, R}.
").

-define(A_V2, "
-module(bd_pv_a).
-export([v/0, loop/1, ext_loop/1, mkfun/0, outer/0]).
v() -> 2.
loop(X) -> receive {get, P} -> P ! {v, v()}, loop(X); stop -> ok end.
ext_loop(X) -> receive {get, P} -> P ! {v, v()}, ?MODULE:ext_loop(X); stop -> ok end.
mkfun() -> fun() -> v() end.
outer() -> R = bd_pv_nest:nest(12), {done, R}.
").

%% Not upgraded: a chain of ten distinct non-tail calls (a stacktrace
%% folds repeated frames) puts bd_pv_a:outer/0 below the 8 frames of a
%% stacktrace; a holder keeps a fun it was given.
nest_source() ->
    "-module(bd_pv_nest).\n-export([nest/1, hold/1]).\n"
    "nest(_) -> 1 + d1().\n"
    ++ lists:append([io_lib:format("d~b() -> 1 + d~b().~n", [I, I + 1]) || I <- lists:seq(1, 9)])
    ++ "d10() -> receive {get, P} -> P ! {nested, 0}, 0 end.\n"
    "hold(F) -> receive {call, P} -> P ! {called, catch F()}, hold(F) end.\n".

%% A gen_server module, supervised in an application (release_handler
%% suspends it for {update, bd_pv_srv}) and once more unsupervised.
-define(SRV, "
-module(bd_pv_srv).
-behaviour(gen_server).
-export([start_link/0, start/0, init/1, handle_call/3, handle_cast/2, code_change/3]).
start_link() -> gen_server:start_link(?MODULE, [], []).
start() -> gen_server:start(?MODULE, [], []).
init([]) -> {ok, 0}.
handle_call(get, _From, S) -> {reply, S, S}.
handle_cast(_, S) -> {noreply, S}.
code_change(_, S, _) -> {ok, S}.
").

-define(APPMOD, "
-module(bd_pv_appmod).
-behaviour(application).
-behaviour(supervisor).
-export([start/2, stop/1, init/1]).
start(_, _) -> supervisor:start_link({local, bd_pv_sup}, ?MODULE, []).
stop(_) -> ok.
init([]) ->
    {ok, {#{strategy => one_for_one},
          [#{id => srv, start => {bd_pv_srv, start_link, []}, modules => [bd_pv_srv]}]}}.
").

%%% FIXTURE %%%

setup() ->
    Dir = filename:join("/tmp", "bd_pv_tests_" ++ os:getpid()),
    [ok = filelib:ensure_dir(filename:join([Dir, V, "x"])) || V <- ["v1", "v2", "v3"]],
    [compile(filename:join(Dir, "v1"), S) || S <- [?A_V1, nest_source(), ?SRV, ?APPMOD]],
    compile(filename:join(Dir, "v2"), ?A_V2),
    compile(filename:join(Dir, "v3"), ?A_V1),
    [load(Dir, "v1", M) || M <- [bd_pv_a, bd_pv_nest, bd_pv_srv, bd_pv_appmod]],
    Dir.

cleanup(Dir) ->
    _ = application:stop(bd_pv_app),
    _ = application:unload(bd_pv_app),
    [begin code:purge(M), code:delete(M), code:purge(M) end
     || M <- [bd_pv_a, bd_pv_nest, bd_pv_srv, bd_pv_appmod]],
    os:cmd("rm -rf " ++ Dir).

compile(Dir, Source) ->
    {match, [Name]} = re:run(Source, "-module\\(([a-z_]+)\\)", [{capture, all_but_first, list}]),
    File = filename:join(Dir, Name ++ ".erl"),
    ok = file:write_file(File, Source),
    {ok, _} = compile:file(File, [debug_info, {outdir, Dir}, return_errors]).

%% code:load_binary, as release_handler loads: lingering old code is
%% purged (brutally) first; the file name makes code:which/1 find the beam.
load(Dir, Vsn, M) ->
    File = filename:join([Dir, Vsn, atom_to_list(M) ++ ".beam"]),
    {ok, Bin} = file:read_file(File),
    {module, M} = code:load_binary(M, File, Bin).

preview_test_() ->
    {setup, fun setup/0, fun cleanup/1,
     fun(Dir) ->
             {inorder,
              [{"fates for a first load (no old code) match what a purge does", fun() -> first_load(Dir) end},
               {"lingering old code: brutal pre-purge kills, soft blocks", fun() -> lingering(Dir) end},
               {"after install: exactly the old-code processes", fun() -> after_install(Dir) end},
               {"update: suspended with and without code_change", fun() -> suspended(Dir) end},
               {"purge instruction and emulator restart", fun() -> purge_and_restart(Dir) end},
               {"scan skips its own workers and the caller", fun() -> scan_self(Dir) end},
               {"old_code lists exactly check_process_code", fun() -> old_code(Dir) end}]}
     end}.

loops(M) ->
    {ok, A} = beamdeck_agent_lint:analyze_loaded(M),
    #{M => [{atom_to_binary(F, utf8), Ar} || {F, Ar} <- beamdeck_agent_lint:loops(A)]}.

script(M, Pre, Post) -> [{load, {M, Pre, Post}}].

fates(#{modules := [#{entries := Es}]}) ->
    maps:from_list([{P, {F, W}} || #{pid := P, fate := F, 'when' := W} <- Es]).

entry(P, #{modules := [#{entries := Es}]}) ->
    [E] = [E || #{pid := Q} = E <- Es, Q =:= P],
    E.

spawn_all() ->
    Loop = spawn(bd_pv_a, loop, [x]),
    Ext = spawn(bd_pv_a, ext_loop, [x]),
    Holder = spawn(bd_pv_nest, hold, [bd_pv_a:mkfun()]),
    Outer = spawn(bd_pv_a, outer, []),
    Other = spawn(fun() -> receive stop -> ok end end),
    beamdeck_test_util:wait_waiting([Loop, Ext, Holder, Outer, Other]),
    #{loop => Loop, ext => Ext, holder => Holder, outer => Outer, other => Other}.

kill_all(Ps) -> [exit(P, kill) || P <- maps:values(Ps)].

first_load(Dir) ->
    #{loop := Loop, ext := Ext, holder := Holder, outer := Outer, other := Other} = Ps = spawn_all(),
    Loops = loops(bd_pv_a),
    Brutal = beamdeck_agent_preview:preview(script(bd_pv_a, brutal_purge, brutal_purge),
                                            #{loops => Loops}),
    F = fates(Brutal),
    ?assertEqual({killed, make_permanent}, maps:get(Loop, F)),
    ?assertEqual({may_migrate, make_permanent}, maps:get(Ext, F)),
    ?assertEqual({badfun_on_next_call, make_permanent}, maps:get(Holder, F)),
    ?assertEqual({may_migrate, make_permanent}, maps:get(Outer, F)),
    ?assertNot(maps:is_key(Other, F)),
    ?assertNot(maps:is_key(self(), F)),
    ?assertEqual([{<<"loop">>, 1}], maps:get(frames, entry(Loop, Brutal))),
    ?assert(maps:get(holds_fun, entry(Holder, Brutal))),
    %% Outer's frame is below the 8 frames of a stacktrace: only the full
    %% backtrace shows it.
    {current_stacktrace, Stack} = process_info(Outer, current_stacktrace),
    ?assertEqual([], [x || {bd_pv_a, _, _, _} <- Stack]),
    ?assertEqual([{<<"outer">>, 0}], maps:get(frames, entry(Outer, Brutal))),

    Soft = fates(beamdeck_agent_preview:preview(script(bd_pv_a, brutal_purge, soft_purge),
                                                #{loops => Loops})),
    ?assertEqual({stays_on_old_code, null}, maps:get(Loop, Soft)),
    ?assertEqual({may_migrate, null}, maps:get(Ext, Soft)),
    ?assertEqual({badfun_on_next_call, null}, maps:get(Holder, Soft)),
    %% A rollback to the permanent release runs no make_permanent.
    NoPerm = fates(beamdeck_agent_preview:preview(script(bd_pv_a, brutal_purge, brutal_purge),
                                                  #{loops => Loops, permanent_step => false})),
    ?assertEqual({stays_on_old_code, null}, maps:get(Loop, NoPerm)),

    %% What the VM does: load the new version (install), then purge.
    load(Dir, "v2", bd_pv_a),
    ?assert(erlang:check_process_code(Loop, bd_pv_a)),
    ?assert(erlang:check_process_code(Ext, bd_pv_a)),
    ?assert(erlang:check_process_code(Outer, bd_pv_a)),
    ?assertNot(erlang:check_process_code(Holder, bd_pv_a)),  % funs are ignored
    Ext ! {get, self()},
    ?assertEqual({v, 1}, receive {v, _} = V -> V after 1000 -> timeout end),
    beamdeck_test_util:wait_waiting([Ext]),                  % back in its receive
    ?assertNot(erlang:check_process_code(Ext, bd_pv_a)),     % it migrated
    Loop ! {get, self()},
    ?assertEqual({v, 1}, receive {v, _} = V2 -> V2 after 1000 -> timeout end),
    ?assert(erlang:check_process_code(Loop, bd_pv_a)),       % it cannot
    ?assertNot(code:soft_purge(bd_pv_a)),                    % soft: stays
    ?assert(is_process_alive(Loop)),
    Mon = [{P, erlang:monitor(process, P)} || P <- [Loop, Outer, Holder, Ext]],
    code:purge(bd_pv_a),                                     % brutal: killed
    ?assertEqual(killed, down(Loop, Mon)),
    ?assertEqual(killed, down(Outer, Mon)),                  % did not migrate in time
    ?assert(is_process_alive(Holder)),
    ?assert(is_process_alive(Ext)),
    Holder ! {call, self()},
    ?assertMatch({called, {'EXIT', {{badfun, _}, _}}},
                 receive {called, _} = C -> C after 1000 -> timeout end),
    kill_all(Ps),
    load(Dir, "v1", bd_pv_a).

down(P, Mon) ->
    {P, Ref} = lists:keyfind(P, 1, Mon),
    receive {'DOWN', Ref, process, P, Reason} -> Reason after 2000 -> alive end.

lingering(Dir) ->
    load(Dir, "v1", bd_pv_a),
    Loop = spawn(bd_pv_a, loop, [x]),
    beamdeck_test_util:wait_waiting([Loop]),
    load(Dir, "v2", bd_pv_a),            % Loop now on old code (as after a soft post-purge)
    Fresh = spawn(bd_pv_a, loop, [y]),   % on the current code
    beamdeck_test_util:wait_waiting([Fresh]),
    Loops = loops(bd_pv_a),
    Brutal = beamdeck_agent_preview:preview(script(bd_pv_a, brutal_purge, brutal_purge),
                                            #{loops => Loops}),
    ?assertEqual({killed, install}, maps:get(Loop, fates(Brutal))),
    ?assertEqual({killed, make_permanent}, maps:get(Fresh, fates(Brutal))),
    [#{has_old := HasOld}] = maps:get(modules, Brutal),
    ?assert(HasOld),
    Soft = beamdeck_agent_preview:preview(script(bd_pv_a, soft_purge, brutal_purge),
                                          #{loops => Loops}),
    ?assertEqual({blocks_install, install}, maps:get(Loop, fates(Soft))),
    ?assertMatch({_, _}, binary:match(maps:get(why, entry(Loop, Soft)), <<"old_processes">>)),
    %% The VM: a soft purge is refused while Loop runs the old code; loading
    %% a third version purges it brutally.
    ?assertNot(code:soft_purge(bd_pv_a)),
    Ref = erlang:monitor(process, Loop),
    load(Dir, "v3", bd_pv_a),
    ?assertEqual(killed, receive {'DOWN', Ref, process, Loop, R} -> R after 2000 -> alive end),
    ?assert(is_process_alive(Fresh)),
    beamdeck_test_util:kill_wait([Fresh]),
    code:purge(bd_pv_a),
    load(Dir, "v1", bd_pv_a).

after_install(Dir) ->
    Loop = spawn(bd_pv_a, loop, [x]),
    Holder = spawn(bd_pv_nest, hold, [bd_pv_a:mkfun()]),
    beamdeck_test_util:wait_waiting([Loop, Holder]),
    load(Dir, "v2", bd_pv_a),
    New = spawn(bd_pv_a, loop, [y]),
    beamdeck_test_util:wait_waiting([New]),
    P = beamdeck_agent_preview:preview(script(bd_pv_a, brutal_purge, brutal_purge),
                                       #{stage => make_permanent}),
    F = fates(P),
    ?assertEqual({killed, make_permanent}, maps:get(Loop, F)),
    ?assertEqual({badfun_on_next_call, null}, maps:get(Holder, F)),
    ?assertNot(maps:is_key(New, F)),        % on the new code: nothing happens to it
    S = fates(beamdeck_agent_preview:preview(script(bd_pv_a, brutal_purge, soft_purge),
                                             #{stage => make_permanent})),
    ?assertEqual({stays_on_old_code, null}, maps:get(Loop, S)),
    beamdeck_test_util:kill_wait([Loop, Holder, New]),
    code:purge(bd_pv_a),
    load(Dir, "v1", bd_pv_a).

suspended(_Dir) ->
    ok = application:load({application, bd_pv_app,
                           [{description, "preview test"}, {vsn, "1"}, {modules, []},
                            {registered, [bd_pv_sup]}, {applications, [kernel, stdlib]},
                            {mod, {bd_pv_appmod, []}}]}),
    ok = application:start(bd_pv_app),
    [{srv, Sup, worker, [bd_pv_srv]}] = supervisor:which_children(bd_pv_sup),
    {ok, Loose} = bd_pv_srv:start(),
    ?assertEqual(#{bd_pv_srv => [Sup]}, beamdeck_agent_tree:supervised([bd_pv_srv], 2000)),
    Update = [{suspend, [bd_pv_srv]}, {load, {bd_pv_srv, brutal_purge, brutal_purge}},
              {code_change, up, [{bd_pv_srv, []}]}, {resume, [bd_pv_srv]}],
    P = beamdeck_agent_preview:preview(Update, #{loops => loops(bd_pv_srv)}),
    ?assertEqual({suspended, install}, maps:get(Sup, fates(P))),
    ?assertMatch({_, _}, binary:match(maps:get(why, entry(Sup, P)), <<"calls code_change/3">>)),
    %% The gen_server nobody supervises is not suspended: said so.
    ?assertEqual({unaffected, null}, maps:get(Loose, fates(P))),
    ?assertMatch({_, _}, binary:match(maps:get(why, entry(Loose, P)), <<"not suspended">>)),
    Soft = [I || I <- Update, element(1, I) =/= code_change],
    P2 = beamdeck_agent_preview:preview(Soft, #{loops => loops(bd_pv_srv)}),
    ?assertEqual({suspended, install}, maps:get(Sup, fates(P2))),
    ?assertMatch({_, _}, binary:match(maps:get(why, entry(Sup, P2)), <<"does not call code_change/3">>)),
    %% A plain load: the gen_server calls its module externally.
    P3 = beamdeck_agent_preview:preview(script(bd_pv_srv, brutal_purge, brutal_purge), #{}),
    ?assertEqual({unaffected, null}, maps:get(Sup, fates(P3))),
    gen_server:stop(Loose),
    ok = application:stop(bd_pv_app).

purge_and_restart(_Dir) ->
    Loop = spawn(bd_pv_a, loop, [x]),
    beamdeck_test_util:wait_waiting([Loop]),
    Delete = [{remove, {bd_pv_a, brutal_purge, brutal_purge}}, {purge, [bd_pv_a]}],
    P = beamdeck_agent_preview:preview(Delete, #{loops => loops(bd_pv_a)}),
    ?assertEqual({killed, install}, maps:get(Loop, fates(P))),
    ?assertEqual(none, maps:get(restart, P)),
    R = beamdeck_agent_preview:preview([restart_new_emulator | script(bd_pv_a, brutal_purge, brutal_purge)],
                                       #{loops => loops(bd_pv_a)}),
    ?assertEqual(restart_new_emulator, maps:get(restart, R)),
    exit(Loop, kill).

scan_self(_Dir) ->
    Loop = spawn(bd_pv_a, loop, [x]),
    %% This process mentions bd_pv_a (in the call below); the workers hold the pattern.
    Scan = beamdeck_agent_scan:scan([bd_pv_a], #{workers => 3}),
    ?assertEqual(3, maps:get(workers, Scan)),
    Hits = [P || {P, _} <- maps:get(bd_pv_a, maps:get(hits, Scan), [])],
    ?assert(lists:member(Loop, Hits)),
    ?assertNot(lists:member(self(), Hits)),
    %% Every hit is a real process outside the scan (the workers are gone).
    ?assertEqual([], [P || P <- Hits, not is_process_alive(P)]),
    exit(Loop, kill).

old_code(Dir) ->
    Loop = spawn(bd_pv_a, loop, [x]),
    Loop2 = spawn(bd_pv_a, loop, [y]),
    beamdeck_test_util:wait_waiting([Loop, Loop2]),
    load(Dir, "v2", bd_pv_a),
    R = beamdeck_agent_old_code:old_code([bd_pv_a]),
    [M] = [M || #{module := <<"bd_pv_a">>} = M <- maps:get(modules, R)],
    Expected = lists:sort([list_to_binary(pid_to_list(P)) || P <- erlang:processes(),
                                                             erlang:check_process_code(P, bd_pv_a)]),
    ?assertEqual(Expected, lists:sort([P || #{pid := P} <- maps:get(processes, M)])),
    ?assertEqual(2, maps:get(count, M)),
    ?assert(maps:get(hasOldCode, M)),
    _ = iolist_to_binary(beamdeck_agent_json:encode(R)),
    beamdeck_test_util:kill_wait([Loop, Loop2]),
    code:purge(bd_pv_a),
    R2 = beamdeck_agent_old_code:old_code([bd_pv_a]),
    ?assertMatch([#{count := 0, hasOldCode := false}],
                 [M2 || #{module := <<"bd_pv_a">>} = M2 <- maps:get(modules, R2)]),
    load(Dir, "v1", bd_pv_a).

%%% BACKTRACE PARSING %%%

parse_test() ->
    Bt = <<"Program counter: 0x00007f4 ('Elixir.TestListener':loop/1 + 80)\n"
           "y(0)     #Fun<Elixir.TestListener.0.25617426>\n"
           "y(1)     'Elixir.TestListenerX'\n\n"
           "0x00007f43 Return addr 0x00007f4 ('Elixir.TestListener':'-start/1-fun-0-'/0 + 40)\n"
           "y(0)     {gen_server,bd_mod,[]}\n\n"
           "0x00007f43 Return addr 0x00007f4 (bd_other:run/2 + 12)\n">>,
    R = beamdeck_agent_scan:parse_backtrace(Bt, ['Elixir.TestListener', bd_mod, bd_other,
                                                    'Elixir.TestListenerX', bd_absent]),
    ?assertEqual(#{frames => [{<<"loop">>, 1}, {<<"-start/1-fun-0-">>, 0}], holds_fun => true,
                   mention => true}, maps:get('Elixir.TestListener', R)),
    ?assertEqual(#{frames => [], holds_fun => false, mention => true}, maps:get(bd_mod, R)),
    ?assertEqual(#{frames => [{<<"run">>, 2}], holds_fun => false, mention => true},
                 maps:get(bd_other, R)),
    ?assertEqual(#{frames => [], holds_fun => false, mention => true},
                 maps:get('Elixir.TestListenerX', R)),
    ?assertNot(maps:is_key(bd_absent, R)),
    %% A longer module name is not a mention of a shorter one.
    R2 = beamdeck_agent_scan:parse_backtrace(<<"y(0)     bd_mod_two\n">>, [bd_mod]),
    ?assertEqual(#{}, R2).
