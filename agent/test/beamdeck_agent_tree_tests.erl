-module(beamdeck_agent_tree_tests).

-include_lib("eunit/include/eunit.hrl").

%% The test application: its callback, supervisors and workers live here.
-export([start/2, stop/1, init/1, start_worker/1, start_acceptor/0, start_dyn_child/0]).

-define(APP, bd_tree_test_app).

%%% The application under observation %%%
%%%
%%% bd_tree_top (one_for_one)
%%%   worker_a                 a proc_lib worker
%%%   child_sup (bd_tree_child)
%%%     w1, w2                 workers
%%%     dyn_sup (simple_one_for_one, 30 children)
%%%   acceptor                 like the seed's Task: spawn_links 3 unsupervised
%%%                            children; the first starts a chain of 3 more.

start(_Type, _Args) ->
    supervisor:start_link({local, bd_tree_top}, ?MODULE, top).

stop(_State) -> ok.

init(top) ->
    {ok, {#{strategy => one_for_one, intensity => 0, period => 1},
          [#{id => worker_a, start => {?MODULE, start_worker, [worker_a]}},
           #{id => child_sup, type => supervisor,
             start => {supervisor, start_link, [{local, bd_tree_child}, ?MODULE, child]}},
           #{id => acceptor, start => {?MODULE, start_acceptor, []}}]}};
init(child) ->
    {ok, {#{strategy => one_for_one, intensity => 0, period => 1},
          [#{id => w1, start => {?MODULE, start_worker, [w1]}},
           #{id => w2, start => {?MODULE, start_worker, [w2]}},
           #{id => dyn_sup, type => supervisor,
             start => {supervisor, start_link, [{local, bd_tree_dyn}, ?MODULE, dyn]}}]}};
init(dyn) ->
    {ok, {#{strategy => simple_one_for_one, intensity => 0, period => 1},
          [#{id => dyn_child, start => {?MODULE, start_dyn_child, []}}]}}.

start_worker(_Name) ->
    {ok, proc_lib:spawn_link(fun idle/0)}.

start_dyn_child() ->
    {ok, proc_lib:spawn_link(fun idle/0)}.

idle() -> receive stop -> ok end.

start_acceptor() ->
    {ok, proc_lib:spawn_link(fun acceptor/0)}.

acceptor() ->
    %% Like Task.async: linked, supervised by nobody. The second is a
    %% proc_lib process, whose real initial call is in its dictionary.
    Kids = [spawn_link(fun() -> chain(3) end), proc_lib:spawn_link(fun idle/0),
            spawn_link(fun idle/0)],
    acceptor_loop(Kids).

acceptor_loop(Kids) ->
    receive
        {kids, From} -> From ! {kids, Kids}, acceptor_loop(Kids)
    end.

%% Each link of the chain spawn_links the next one.
chain(0) -> chain_loop(none);
chain(N) -> chain_loop(spawn_link(fun() -> chain(N - 1) end)).

chain_loop(Next) ->
    receive
        {next, From} -> From ! {next, Next}, chain_loop(Next)
    end.

%%% Fixture %%%

setup() ->
    ok = application:load({application, ?APP,
                           [{description, "beamdeck tree test"}, {vsn, "1.2.3"},
                            {modules, []}, {registered, []},
                            {applications, [kernel, stdlib]},
                            {mod, {?MODULE, []}}]}),
    ok = application:start(?APP),
    [{ok, _} = supervisor:start_child(bd_tree_dyn, []) || _ <- lists:seq(1, 30)],
    ok.

cleanup(_) ->
    _ = application:stop(?APP),
    _ = application:unload(?APP),
    ok.

tree_test_() ->
    {setup, fun setup/0, fun cleanup/1,
     fun(_) ->
             [{"tree matches supervisor:which_children/1", fun matches_which_children/0},
              {"unsupervised linked processes", fun linked_processes/0},
              {"suspended supervisor times out", {timeout, 20, fun suspended_supervisor/0}},
              {"children cap", fun children_cap/0},
              {"size budget", fun size_budget/0},
              {"json shape", fun json_shape/0}]
     end}.

%%% Tests %%%

app_tree(Opts) ->
    [App] = [A || #{name := <<"bd_tree_test_app">>} = A <- beamdeck_agent_tree:apps(Opts)],
    App.

pid(P) -> list_to_binary(pid_to_list(P)).

%% The tree as {Id, Pid, Kind, Children}, straight from which_children/1.
expected(Sup) ->
    [{beamdeck_agent_terms:id_text(Id), beamdeck_agent_terms:maybe_pid(Child), Type,
      case Type of
          supervisor when is_pid(Child) -> expected(Child);
          _ -> []
      end}
     || {Id, Child, Type, _Mods} <- supervisor:which_children(Sup)].

actual(#{children := Kids}) ->
    [{Id, Pid, Kind, actual(K)} || #{id := Id, pid := Pid, kind := Kind} = K <- Kids].

matches_which_children() ->
    #{root := Root, vsn := Vsn, master := Master} = app_tree(#{max_children => 100}),
    ?assertEqual(<<"1.2.3">>, Vsn),
    ?assertEqual(pid(application_controller:get_master(?APP)), Master),
    ?assertEqual(pid(whereis(bd_tree_top)), maps:get(pid, Root)),
    ?assertEqual(<<"bd_tree_top">>, maps:get(name, Root)),
    ?assertEqual(supervisor, maps:get(kind, Root)),
    ?assertEqual([<<"beamdeck_agent_tree_tests">>], maps:get(modules, Root)),
    ?assertEqual(expected(whereis(bd_tree_top)), actual(Root)),
    %% Spot checks on the nested supervisor.
    [Child] = [K || #{id := <<"child_sup">>} = K <- maps:get(children, Root)],
    ?assertEqual(<<"bd_tree_child">>, maps:get(name, Child)),
    [Dyn] = [K || #{id := <<"dyn_sup">>} = K <- maps:get(children, Child)],
    ?assertEqual(30, length(maps:get(children, Dyn))),
    ?assertEqual(false, maps:get(truncated, Dyn)),
    ?assertEqual(false, maps:is_key(timeout, Dyn)).

linked_processes() ->
    #{root := Root} = app_tree(#{}),
    [Acc] = [K || #{id := <<"acceptor">>} = K <- maps:get(children, Root)],
    AccPid = list_to_pid(binary_to_list(maps:get(pid, Acc))),
    AccPid ! {kids, self()},
    Kids = receive {kids, K} -> K after 1000 -> error(no_kids) end,
    Linked = maps:get(linked, Acc),
    ?assertEqual(lists:sort([pid(K) || K <- Kids]), lists:sort([maps:get(pid, L) || L <- Linked])),
    [First, ProcLib, _] = Kids,
    [FirstEntry] = [L || #{pid := P} = L <- Linked, P =:= pid(First)],
    ?assertEqual(<<"erlang:apply/2">>, maps:get(initialCall, FirstEntry)),
    [PLEntry] = [L || #{pid := P} = L <- Linked, P =:= pid(ProcLib)],
    ?assertEqual(<<"beamdeck_agent_tree_tests:idle/0">>, maps:get(initialCall, PLEntry)),
    ?assertEqual([], maps:get(linked, PLEntry)),
    %% The chain: depth 2 and 3 are listed, depth 4 is not.
    G2 = next(First),
    G3 = next(G2),
    G4 = next(G3),
    ?assert(is_pid(G4)),
    [#{pid := P2, linked := [#{pid := P3, linked := L3}]}] = maps:get(linked, FirstEntry),
    ?assertEqual({pid(G2), pid(G3), []}, {P2, P3, L3}),
    %% Supervised processes are never `linked': supervisors and workers show none.
    [?assertEqual([], maps:get(linked, K)) || K <- maps:get(children, Root), K =/= Acc],
    ?assertEqual([], maps:get(linked, Root)).

next(P) ->
    P ! {next, self()},
    receive {next, N} -> N after 1000 -> error(no_next) end.

suspended_supervisor() ->
    ok = sys:suspend(bd_tree_child),
    try
        T0 = erlang:monotonic_time(millisecond),
        #{root := Root} = app_tree(#{timeout => 300}),
        Took = erlang:monotonic_time(millisecond) - T0,
        ?assert(Took < 3000),
        [Child] = [K || #{id := <<"child_sup">>} = K <- maps:get(children, Root)],
        ?assertEqual(true, maps:get(timeout, Child)),
        ?assertEqual([], maps:get(children, Child)),
        %% The rest of the tree is still there.
        ?assertEqual(3, length(maps:get(children, Root)))
    after
        ok = sys:resume(bd_tree_child)
    end,
    %% And once resumed, it answers again.
    #{root := Root2} = app_tree(#{}),
    [Child2] = [K || #{id := <<"child_sup">>} = K <- maps:get(children, Root2)],
    ?assertNot(maps:is_key(timeout, Child2)),
    ?assertEqual(3, length(maps:get(children, Child2))).

children_cap() ->
    #{root := Root} = app_tree(#{max_children => 10}),
    [Child] = [K || #{id := <<"child_sup">>} = K <- maps:get(children, Root)],
    [Dyn] = [K || #{id := <<"dyn_sup">>} = K <- maps:get(children, Child)],
    ?assertEqual(10, length(maps:get(children, Dyn))),
    ?assertEqual(true, maps:get(truncated, Dyn)),
    %% The cap does not make the dynamic children show up as `linked'.
    ?assertEqual([], maps:get(linked, Dyn)).

size_budget() ->
    Full = iolist_size(beamdeck_agent_json:encode(beamdeck_agent_tree:apps())),
    Small = beamdeck_agent_tree:apps(#{max_bytes => 3000}),
    SmallSize = iolist_size(beamdeck_agent_json:encode(Small)),
    ?assert(SmallSize < Full),
    %% Once the budget is spent each application still gets its entry and a
    %% bare (truncated) root node: about 300 bytes each, at most.
    ?assert(SmallSize =< 3000 + 300 * length(Small)),
    ?assert(lists:member(true, truncated_flags(Small))).

truncated_flags(Apps) ->
    lists:append([flags(R) || #{root := R} <- Apps, R =/= null]).

flags(#{truncated := T, children := Kids}) -> [T | lists:append([flags(K) || K <- Kids])].

json_shape() ->
    Apps = beamdeck_agent_tree:apps(),
    {ok, Decoded} = beamdeck_agent_json:decode(iolist_to_binary(beamdeck_agent_json:encode(Apps))),
    [Kernel] = [A || #{<<"name">> := <<"kernel">>} = A <- Decoded],
    Root = maps:get(<<"root">>, Kernel),
    ?assertEqual(lists:sort([<<"pid">>, <<"id">>, <<"name">>, <<"kind">>, <<"modules">>,
                             <<"children">>, <<"linked">>, <<"truncated">>]),
                 lists:sort(maps:keys(Root))),
    ?assertEqual(<<"supervisor">>, maps:get(<<"kind">>, Root)),
    %% Applications without a process (stdlib) have no root.
    [Stdlib] = [A || #{<<"name">> := <<"stdlib">>} = A <- Decoded],
    ?assertEqual(null, maps:get(<<"root">>, Stdlib)),
    ?assertEqual(null, maps:get(<<"master">>, Stdlib)).
