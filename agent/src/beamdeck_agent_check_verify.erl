%%% @doc Verify after install and after make_permanent (issue 13): every
%%% loaded module of the applications whose version changed between the
%%% two releases runs the code of the now-current release's beam on disk.
%%% A miss is a module the relup left on its old code (the appup forgot
%%% it), or code someone loaded by hand. And every permanent child of
%%% those applications' supervisors runs: release_handler gives a
%%% supervisor its new child specs but starts none (`notStarted'). And the
%%% processes the plan's `not_suspended' findings named are still alive
%%% (`processes'; a dead one is a miss, with the exit reason when the step
%%% saw it die). The command result carries it as
%%% the optional field `verification' (capability `verification' in
%%% `hello.capabilities'; docs/protocol.md); each kind of miss is also one
%%% `upgrade_unverified' event (events/3).
-module(beamdeck_agent_check_verify).

-export([run/2, run/3, compare/2, processes/1, events/3, lone_pids/1]).

-define(MAX_LISTED, 100).
-define(CALL_TIMEOUT, 1000).
-define(MAX_SUPS, 1000).

-type verification() :: #{ok := boolean(), checked := non_neg_integer(),
                          missed := [map()], missedCount := non_neg_integer(),
                          notStarted => [map()], processes => [map()]}.
%% A process a `not_suspended' finding named: its pid, the finding's
%% module, and its exit reason if the step saw it die (else `null').
-type watched() :: {pid(), binary() | null, binary() | null}.
-export_type([verification/0, watched/0]).

%% @doc run/3 without processes to check.
-spec run(From, To) -> verification() | null when From :: binary() | string(), To :: binary() | string().
run(From, To) ->
    run(From, To, []).

%% @doc Verify the node against release `To' (the one now current), for the
%% applications whose version differs from release `From', and that the
%% `Watched' processes live. `null' when either release is unknown.
-spec run(From, To, Watched) -> verification() | null
    when From :: binary() | string(), To :: binary() | string(), Watched :: [watched()].
run(From, To, Watched) ->
    case modules_and_children(From, To) of
        null -> null;
        V ->
            Procs = processes(Watched),
            V#{ok => maps:get(ok, V) andalso lists:all(fun(#{alive := A}) -> A end, Procs),
               processes => lists:sublist(Procs, ?MAX_LISTED)}
    end.

%% @doc Each watched process: alive now, or dead (with the reason the step saw).
-spec processes(Watched) -> [map()] when Watched :: [watched()].
processes(Watched) ->
    [#{pid => beamdeck_agent_terms:pid(P), module => M, alive => Alive,
       reason => case Alive of true -> null; false -> R end}
     || {P, M, R} <- lists:ukeysort(1, Watched), Alive <- [is_process_alive(P)]].

%% @doc The processes named by the `not_suspended' findings among `Findings'
%% (plan JSON), as `{Pid, Module}'.
-spec lone_pids(Findings) -> [{pid(), binary() | null}] when Findings :: [map()].
lone_pids(Findings) ->
    [{Pid, M} || #{check := not_suspended, module := M, pids := Ps} <- Findings, P <- Ps,
                 Pid <- [try list_to_pid(binary_to_list(P)) catch error:badarg -> none end],
                 is_pid(Pid), node(Pid) =:= node()].

%% @doc One `upgrade_unverified' event per kind of miss in `V' after step
%% `Step' to release `Vsn' (for beamdeck_agent_events:notify/1): `old_code'
%% (modules), `not_started' (children), `dead' (processes).
-spec events(Step, Vsn, V) -> [map()]
    when Step :: atom(), Vsn :: binary(), V :: verification() | null.
events(_Step, _Vsn, null) -> [];
events(Step, Vsn, V) ->
    Missed = maps:get(missed, V, []),
    Idle = maps:get(notStarted, V, []),
    Dead = [P || #{alive := false} = P <- maps:get(processes, V, [])],
    Base = #{kind => <<"upgrade_unverified">>, step => Step, vsn => Vsn},
    [Base#{miss => old_code, modules => [M || #{module := M} <- Missed],
           count => maps:get(missedCount, V, length(Missed)),
           context => fmt("~ts of ~ts: ~b module(s) not on the release's code: ~ts",
                          [Step, Vsn, maps:get(missedCount, V, length(Missed)),
                           lists:join(", ", [M || #{module := M} <- Missed])])}
     || Missed =/= []]
        ++ [Base#{miss => not_started, children => Idle, count => length(Idle),
                  context => fmt("~ts of ~ts: ~b permanent child(ren) not started: ~ts",
                                 [Step, Vsn, length(Idle),
                                  lists:join(", ", [[S, $/, I] || #{supervisor := S, id := I} <- Idle])])}
            || Idle =/= []]
        ++ [Base#{miss => dead, processes => Dead, pids => [P || #{pid := P} <- Dead],
                  count => length(Dead),
                  context => fmt("~ts of ~ts: ~b process(es) the upgrade could not reach died: ~ts",
                                 [Step, Vsn, length(Dead),
                                  lists:join(", ", [[P, " (", mod_text(M), ")"]
                                                    || #{pid := P, module := M} <- Dead])])}
            || Dead =/= []].

mod_text(null) -> <<"?">>;
mod_text(M) -> M.

fmt(Format, Args) ->
    unicode:characters_to_binary(io_lib:format(Format, Args)).

modules_and_children(From, To) ->
    #{rels := Rels} = beamdeck_agent_release:releases_info(),
    Libs = fun(V) -> [L || #{vsn := Vsn, libs := L} <- Rels, Vsn =:= text(V)] end,
    case {Libs(From), Libs(To)} of
        {[FromLibs], [ToLibs]} ->
            Dirs = [{App, D} || {App, V, D} <- ToLibs,
                                not lists:member(V, [FV || {FA, FV, _} <- FromLibs, FA =:= App])],
            OnDisk = [{App, list_to_atom(filename:basename(F, ".beam")), F}
                      || {App, D} <- Dirs, F <- filelib:wildcard(filename:join([D, "ebin", "*.beam"]))],
            Loaded = [{App, M, Md5, beam_md5(F)} || {App, M, F} <- OnDisk, erlang:module_loaded(M),
                                                    Md5 <- [erlang:get_module_info(M, md5)]],
            V = compare([{App, M, Expected} || {App, M, _, Expected} <- Loaded],
                        maps:from_list([{M, Md5} || {_, M, Md5, _} <- Loaded])),
            NotStarted = not_started([App || {App, _} <- Dirs]),
            V#{ok => maps:get(ok, V) andalso NotStarted =:= [],
               notStarted => lists:sublist(NotStarted, ?MAX_LISTED)};
        _ -> null
    end.

%% @doc The verification of `Expected' (`{App, Module, Md5 on disk}') against
%% the md5s of the code loaded now.
-spec compare(Expected, Loaded) -> verification()
    when Expected :: [{atom(), module(), binary() | error}], Loaded :: #{module() => binary()}.
compare(Expected, Loaded) ->
    Missed = [#{module => atom_to_binary(M, utf8), app => atom_to_binary(App, utf8),
                expected => hex(E), loaded => hex(maps:get(M, Loaded, error))}
              || {App, M, E} <- lists:sort(Expected), E =:= error orelse E =/= maps:get(M, Loaded, error)],
    #{ok => Missed =:= [], checked => length(Expected),
      missed => lists:sublist(Missed, ?MAX_LISTED), missedCount => length(Missed)}.

%% Permanent children without a process in the supervision trees of `Apps'.
not_started(Apps) ->
    Roots = [Sup || App <- Apps, {ok, Sup} <- [beamdeck_agent_otp:app_supervisor(App, ?CALL_TIMEOUT)]],
    lists:append([walk(Sup, 0) || Sup <- lists:sublist(Roots, ?MAX_SUPS)]).

walk(_Sup, Depth) when Depth > 20 -> [];
walk(Sup, Depth) ->
    case beamdeck_agent_otp:which_children(Sup, ?CALL_TIMEOUT) of
        {ok, Children} when is_list(Children) ->
            lists:append(
              [case {Pid, Type} of
                   {undefined, _} -> [#{supervisor => name(Sup), id => id_text(Id)} || permanent(Sup, Id)];
                   {P, supervisor} when is_pid(P) -> walk(P, Depth + 1);
                   _ -> []
               end || {Id, Pid, Type, _} <- lists:sublist(Children, ?MAX_SUPS)]);
        _ -> []
    end.

permanent(Sup, Id) ->
    case beamdeck_agent_otp:call(fun() -> supervisor:get_childspec(Sup, Id) end, ?CALL_TIMEOUT) of
        {ok, {ok, #{restart := permanent}}} -> true;
        _ -> false
    end.

name(Sup) ->
    case process_info(Sup, registered_name) of
        {registered_name, N} -> atom_to_binary(N, utf8);
        _ -> beamdeck_agent_terms:pid(Sup)
    end.

id_text(Id) -> unicode:characters_to_binary(io_lib:format("~0tP", [Id, 8])).

beam_md5(File) ->
    case beam_lib:md5(File) of
        {ok, {_, Md5}} -> Md5;
        {error, _, _} -> error
    end.

hex(error) -> null;
hex(B) -> string:lowercase(binary:encode_hex(B)).

text(B) when is_binary(B) -> binary_to_list(B);
text(L) -> L.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

processes_test() ->
    Dead = spawn(fun() -> ok end),
    Ref = monitor(process, Dead),
    receive {'DOWN', Ref, _, _, _} -> ok after 1000 -> error(timeout) end,
    Alive = self(),
    ?assertMatch([#{alive := true, reason := null, module := <<"a">>},
                  #{alive := false, reason := <<"normal">>, module := <<"b">>}],
                 lists:sort(fun(#{module := A}, #{module := B}) -> A =< B end,
                            processes([{Alive, <<"a">>, <<"ignored">>}, {Dead, <<"b">>, <<"normal">>}]))).

lone_pids_test() ->
    P = beamdeck_agent_terms:pid(self()),
    F = [#{check => not_suspended, module => <<"m">>, pids => [P, <<"junk">>]},
         #{check => fun_in_ets, module => <<"n">>, pids => [P]}],
    ?assertEqual([{self(), <<"m">>}], lone_pids(F)).

events_test() ->
    V = #{ok => false, checked => 3, missedCount => 1, missed => [#{module => <<"m">>}],
          notStarted => [#{supervisor => <<"s">>, id => <<"c">>}],
          processes => [#{pid => <<"<0.1.0>">>, module => <<"l">>, alive => false, reason => null},
                        #{pid => <<"<0.2.0>">>, module => <<"l">>, alive => true, reason => null}]},
    Es = events(install, <<"1.1.0">>, V),
    ?assertEqual([old_code, not_started, dead], [M || #{miss := M} <- Es]),
    ?assertMatch([#{kind := <<"upgrade_unverified">>, modules := [<<"m">>]}, _,
                  #{pids := [<<"<0.1.0>">>], count := 1}], Es),
    ?assertEqual([], events(install, <<"1.1.0">>, V#{missed := [], missedCount := 0, notStarted := [],
                                                      processes := []})),
    ?assertEqual([], events(install, <<"1.1.0">>, null)).

compare_test() ->
    V = compare([{app, a, <<1>>}, {app, b, <<2>>}, {app, c, error}], #{a => <<1>>, b => <<3>>}),
    ?assertMatch(#{ok := false, checked := 3, missedCount := 2}, V),
    ?assertMatch([#{module := <<"b">>, expected := <<"02">>, loaded := <<"03">>},
                  #{module := <<"c">>, expected := null, loaded := null}], maps:get(missed, V)),
    ?assertMatch(#{ok := true, missed := []}, compare([{app, a, <<1>>}], #{a => <<1>>})).
-endif.
