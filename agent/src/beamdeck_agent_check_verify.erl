%%% @doc Verify after install and after make_permanent (issue 13): every
%%% loaded module of the applications whose version changed between the
%%% two releases runs the code of the now-current release's beam on disk.
%%% A miss is a module the relup left on its old code (the appup forgot
%%% it), or code someone loaded by hand. And every permanent child of
%%% those applications' supervisors runs: release_handler gives a
%%% supervisor its new child specs but starts none (`notStarted'). The
%%% command result carries it as
%%% the optional field `verification' (capability `verification' in
%%% `hello.capabilities'; docs/protocol.md).
-module(beamdeck_agent_check_verify).

-export([run/2, compare/2]).

-define(MAX_LISTED, 100).
-define(CALL_TIMEOUT, 1000).
-define(MAX_SUPS, 1000).

-type verification() :: #{ok := boolean(), checked := non_neg_integer(),
                          missed := [map()], missedCount := non_neg_integer(),
                          notStarted => [map()]}.
-export_type([verification/0]).

%% @doc Verify the node against release `To' (the one now current), for the
%% applications whose version differs from release `From'. `null' when
%% either release is unknown.
-spec run(From, To) -> verification() | null when From :: binary() | string(), To :: binary() | string().
run(From, To) ->
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

compare_test() ->
    V = compare([{app, a, <<1>>}, {app, b, <<2>>}, {app, c, error}], #{a => <<1>>, b => <<3>>}),
    ?assertMatch(#{ok := false, checked := 3, missedCount := 2}, V),
    ?assertMatch([#{module := <<"b">>, expected := <<"02">>, loaded := <<"03">>},
                  #{module := <<"c">>, expected := null, loaded := null}], maps:get(missed, V)),
    ?assertMatch(#{ok := true, missed := []}, compare([{app, a, <<1>>}], #{a => <<1>>})).
-endif.
