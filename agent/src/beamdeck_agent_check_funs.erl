%%% @doc Stored funs of purged modules (issue 13): a local fun keeps a
%%% reference to the code of the module that made it. When the relup loads
%%% (or removes) that module, its old code is purged, and calling such a fun
%%% later raises `badfun' in whatever process calls it (deployex PR#280).
%%% Purging ignores funs, so nothing warns at install.
%%%
%%% Where: `fun_in_ets' (tables other processes can read, at most
%%% ?SAMPLE objects of each, at most ?MAX_TABLES tables: the finding says
%%% how much was scanned), `fun_in_persistent_term' (at most ?MAX_PT terms),
%%% `fun_in_app_env' (every loaded application's env). Every term is walked
%%% at most ?NODE_BUDGET nodes deep, so a huge value cannot stall the plan.
-module(beamdeck_agent_check_funs).

-export([check/1, funs_in/3]).

-define(SAMPLE, 1000).
-define(MAX_TABLES, 2000).
-define(MAX_PT, 10000).
-define(NODE_BUDGET, 10000).

%% @doc The findings of this check for the plan's context.
-spec check(Ctx) -> [beamdeck_agent_findings:finding()] when Ctx :: beamdeck_agent_checks:context().
check(#{mods := Mods}) ->
    Purged = sets:from_list([M || #{module := M} <- Mods]),
    case sets:size(Purged) of
        0 -> [];
        _ -> ets_findings(Purged) ++ pt_findings(Purged) ++ env_findings(Purged)
    end.

%% @doc The modules in `Purged' whose local funs `Term' holds, walking at
%% most `Budget' nodes.
-spec funs_in(Term, Purged, Budget) -> [module()]
    when Term :: term(), Purged :: sets:set(module()), Budget :: non_neg_integer().
funs_in(Term, Purged, Budget) ->
    {Found, _} = walk(Term, Purged, {[], Budget}),
    lists:usort(Found).

walk(_T, _P, {_, 0} = Acc) -> Acc;
walk(F, P, {Found, B}) when is_function(F) ->
    case erlang:fun_info(F, type) of
        {type, local} ->
            {module, M} = erlang:fun_info(F, module),
            case sets:is_element(M, P) of
                true -> {[M | Found], B - 1};
                false -> {Found, B - 1}
            end;
        _ -> {Found, B - 1}
    end;
walk([H | T], P, {Found, B}) -> walk(T, P, walk(H, P, {Found, B - 1}));
walk(T, P, {Found, B}) when is_tuple(T) ->
    lists:foldl(fun(E, A) -> walk(E, P, A) end, {Found, B - 1}, tuple_to_list(T));
walk(M, P, {Found, B}) when is_map(M) ->
    maps:fold(fun(K, V, A) -> walk(V, P, walk(K, P, A)) end, {Found, B - 1}, M);
walk(_, _P, {Found, B}) -> {Found, B - 1}.

ets_findings(Purged) ->
    Tables = lists:sublist(ets:all(), ?MAX_TABLES),
    Scans = [{T, Name, Size, Sample} || T <- Tables, {Name, Size, Sample} <- sample(T)],
    Scanned = lists:sum([length(S) || {_, _, _, S} <- Scans]),
    Total = lists:sum([Sz || {_, _, Sz, _} <- Scans]),
    Hits = [{M, Name} || {_T, Name, _, Sample} <- Scans,
                         M <- funs_in(Sample, Purged, ?NODE_BUDGET)],
    [beamdeck_agent_findings:new(
       fun_in_ets, M, [],
       beamdeck_agent_terms:fmt("ETS table(s) ~ts hold local funs of ~ts, whose old code the relup purges: whoever "
           "calls them after the upgrade gets badfun (scanned ~b of ~b objects in ~b readable "
           "tables, at most ~b per table)",
           [join([N || {M2, N} <- Hits, M2 =:= M]), M, Scanned, Total, length(Scans), ?SAMPLE]),
       beamdeck_agent_terms:fmt("store {M, F, A} or an external fun (fun ~ts:f/1) instead of a local fun, or "
           "rewrite the entries in the appup after loading ~ts", [M, M]))
     || M <- lists:usort([M || {M, _} <- Hits])].

sample(T) ->
    try
        case ets:info(T, protection) =/= private orelse ets:info(T, owner) =:= self() of
            true ->
                Objects = case ets:select(T, [{'_', [], ['$_']}], ?SAMPLE) of
                              {Os, _Cont} -> Os;
                              '$end_of_table' -> []
                          end,
                [{table_name(T), ets:info(T, size), Objects}];
            false -> []
        end
    catch error:badarg -> []   % deleted meanwhile
    end.

table_name(T) ->
    case ets:info(T, named_table) of
        true -> atom_to_binary(T, utf8);
        _ -> iolist_to_binary(io_lib:format("~tp", [ets:info(T, name)]))
    end.

pt_findings(Purged) ->
    Terms = lists:sublist(persistent_term:get(), ?MAX_PT),
    Hits = [{M, K} || {K, V} <- Terms, M <- funs_in(V, Purged, ?NODE_BUDGET)],
    [beamdeck_agent_findings:new(
       fun_in_persistent_term, M, [],
       beamdeck_agent_terms:fmt("persistent_term key(s) ~ts hold local funs of ~ts, whose old code the relup "
           "purges: calling them after the upgrade raises badfun (scanned ~b terms)",
           [join([short(K) || {M2, K} <- Hits, M2 =:= M]), M, length(Terms)]),
       beamdeck_agent_terms:fmt("store {M, F, A} or an external fun instead, or put the term again after loading ~ts", [M]))
     || M <- lists:usort([M || {M, _} <- Hits])].

env_findings(Purged) ->
    Hits = [{M, {App, K}} || {App, _, _} <- application:loaded_applications(),
                             {K, V} <- application:get_all_env(App),
                             M <- funs_in(V, Purged, ?NODE_BUDGET)],
    [beamdeck_agent_findings:new(
       fun_in_app_env, M, [],
       beamdeck_agent_terms:fmt("application env ~ts hold(s) local funs of ~ts, whose old code the relup purges: "
           "calling them after the upgrade raises badfun",
           [join([short(AK) || {M2, AK} <- Hits, M2 =:= M]), M]),
       beamdeck_agent_terms:fmt("keep {M, F, A} in the env instead of a fun, or set the key again after loading ~ts", [M]))
     || M <- lists:usort([M || {M, _} <- Hits])].

short(Term) ->
    iolist_to_binary(io_lib:format("~0tP", [Term, 6])).

join(Items) ->
    Unique = lists:usort(Items),
    More = case length(Unique) > 10 of
               true -> [beamdeck_agent_terms:fmt(" and ~b more", [length(Unique) - 10])];
               false -> []
           end,
    iolist_to_binary([lists:join(", ", lists:sublist(Unique, 10)) | More]).


-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

funs_in_finds_local_funs_only_test() ->
    P = sets:from_list([?MODULE]),
    Local = fun() -> ok end,
    Ext = fun lists:reverse/1,
    ?assertEqual([?MODULE], funs_in({a, [1, #{k => Local}]}, P, 100)),
    ?assertEqual([], funs_in({a, [Ext]}, P, 100)),
    ?assertEqual([], funs_in({a, Local}, sets:from_list([other]), 100)).

funs_in_is_bounded_test() ->
    Deep = lists:seq(1, 1000) ++ [fun() -> ok end],
    ?assertEqual([], funs_in(Deep, sets:from_list([?MODULE]), 50)),
    ?assertEqual([?MODULE], funs_in(Deep, sets:from_list([?MODULE]), 5000)).

ets_and_persistent_term_test() ->
    T = ets:new(bd_fun_probe, [public, named_table]),
    true = ets:insert(T, {k, fun() -> ok end}),
    persistent_term:put({?MODULE, probe}, #{f => fun() -> ok end}),
    try
        Fs = check(#{mods => [#{module => ?MODULE}]}),
        ?assertMatch([#{check := fun_in_ets, severity := warning}], [F || #{check := fun_in_ets} = F <- Fs]),
        [#{message := Msg}] = [F || #{check := fun_in_ets} = F <- Fs],
        ?assertMatch({match, _}, re:run(Msg, "bd_fun_probe")),
        ?assertMatch([_], [F || #{check := fun_in_persistent_term} = F <- Fs])
    after ets:delete(T), persistent_term:erase({?MODULE, probe})
    end.
-endif.
