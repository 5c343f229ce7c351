%%% @doc Relup scripts: the operator's purge choices, and the rewrite of a
%%% relup file with them.
%%%
%%% A choice names a module the script loads or removes and sets its
%%% pre-purge and/or post-purge (`soft' or `brutal'). The rewrite always
%%% starts from the original file, kept beside it as `relup.beamdeck-orig'
%%% (made before the first rewrite, refreshed when someone replaces the
%%% relup), changes only the one entry for the path being installed, and
%%% replaces the file by write-then-rename. Without choices the original
%%% content is put back.
-module(beamdeck_agent_relup).

-export([orig_file/1, choices/3, apply_choices/2, diff/2, modules/1, restarts/1,
         stopped_apps/1, rewrite/4, restore/1, choices_json/1, change_json/1]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([choices/2]).
-endif.

-define(MARKER, "%% beamdeck: rewritten").

-type purge() :: brutal_purge | soft_purge.
-type choices() :: #{pre := #{module() => purge()}, post := #{module() => purge()}}.
-type change() :: #{module := module(), field := prePurge | postPurge,
                    from := purge(), to := purge()}.
-type modinfo() :: #{module := module(), op := load | remove, app := atom() | null,
                     pre := purge(), post := purge(), suspend := boolean(),
                     code_change := none | {up | down, term()},
                     purged_at_install := boolean()}.
-export_type([choices/0, modinfo/0, change/0]).

%% @doc Where the original of a relup file is kept.
-spec orig_file(File) -> string() when File :: string().
orig_file(File) -> File ++ ".beamdeck-orig".

%%% CHOICES %%%

-ifdef(TEST).
%% @doc choices/3, strict.
-spec choices(Params, Script) -> {ok, choices()} | {error, bad_request, binary()}
    when Params :: map(), Script :: list().
choices(Params, Script) ->
    choices(Params, Script, strict).
-endif.

%% @doc Purge choices from request params (`purge' sets post-purge,
%% `prePurge' pre-purge; each an object of module name to `soft' or
%% `brutal'). Module names are atom text (`Elixir.TestListener') or an
%% Elixir alias (`TestListener'), and must be loaded or removed by `Script'
%% (no atom is created from the request). `strict' refuses choices for
%% modules the script does not change; `lenient' drops them (choices
%% recorded for an install, reused for its rollback, whose script may
%% change fewer modules).
-spec choices(Params, Script, Mode) -> {ok, choices()} | {error, bad_request, binary()}
    when Params :: map(), Script :: list(), Mode :: strict | lenient.
choices(Params, Script, Mode) ->
    Known = [M || #{module := M} <- modules(Script)],
    Get = fun(Key) ->
                  case {Mode, maps:get(Key, Params, #{})} of
                      {lenient, Map} when is_map(Map) ->
                          maps:filter(fun(Name, _) -> module_named(Name, Known) =/= error end, Map);
                      {_, Other} -> Other
                  end
          end,
    case choice_map(<<"purge">>, Get(<<"purge">>), Known) of
        {ok, Post} ->
            case choice_map(<<"prePurge">>, Get(<<"prePurge">>), Known) of
                {ok, Pre} -> {ok, #{pre => Pre, post => Post}};
                Error -> Error
            end;
        Error -> Error
    end.

choice_map(_Field, null, _Known) -> {ok, #{}};
choice_map(Field, Map, Known) when is_map(Map) ->
    maps:fold(fun(_, _, {error, _, _} = E) -> E;
                 (Name, Value, {ok, Acc}) ->
                      case {module_named(Name, Known), purge_value(Value)} of
                          {{ok, M}, {ok, P}} -> {ok, Acc#{M => P}};
                          {error, _} ->
                              {error, bad_request,
                               beamdeck_agent_terms:fmt("~ts: ~ts is not loaded or removed by this relup (it changes: ~ts)",
                                   [Field, text(Name), known_text(Known)])};
                          {_, error} ->
                              {error, bad_request,
                               beamdeck_agent_terms:fmt("~ts.~ts: expected \"soft\" or \"brutal\", got ~ts",
                                   [Field, text(Name), text(Value)])}
                      end
              end, {ok, #{}}, Map);
choice_map(Field, _, _Known) ->
    {error, bad_request, beamdeck_agent_terms:fmt("~ts must be an object of module name to \"soft\" or \"brutal\"", [Field])}.

module_named(Name, Known) when is_binary(Name) ->
    case [M || M <- Known, atom_to_binary(M, utf8) =:= Name orelse
                           atom_to_binary(M, utf8) =:= <<"Elixir.", Name/binary>>] of
        [M | _] -> {ok, M};
        [] -> error
    end;
module_named(Name, Known) when is_atom(Name) -> module_named(atom_to_binary(Name, utf8), Known);
module_named(_, _) -> error.

purge_value(V) when V =:= <<"soft">>; V =:= <<"soft_purge">>; V =:= soft; V =:= soft_purge -> {ok, soft_purge};
purge_value(V) when V =:= <<"brutal">>; V =:= <<"brutal_purge">>; V =:= brutal; V =:= brutal_purge ->
    {ok, brutal_purge};
purge_value(_) -> error.

%% @doc Choices as JSON: `{purge: {Mod: "soft"}, prePurge: {...}}'.
-spec choices_json(Choices) -> map() when Choices :: choices().
choices_json(#{pre := Pre, post := Post}) ->
    J = fun(M) -> maps:from_list([{atom_to_binary(K, utf8), beamdeck_agent_relup_read:purge_json(V)}
                                  || {K, V} <- maps:to_list(M)]) end,
    #{purge => J(Post), prePurge => J(Pre)}.

%% @doc The script with the choices applied, and what changed.
-spec apply_choices(Script, Choices) -> {list(), [change()]}
    when Script :: list(), Choices :: choices().
apply_choices(Script, #{pre := Pre, post := Post}) ->
    {Out, Changes} =
        lists:mapfoldl(fun({Op, {M, P0, Q0}} = I, Acc) when Op =:= load; Op =:= remove ->
                               P = maps:get(M, Pre, P0),
                               Q = maps:get(M, Post, Q0),
                               C = [#{module => M, field => prePurge, from => P0, to => P} || P =/= P0]
                                   ++ [#{module => M, field => postPurge, from => Q0, to => Q} || Q =/= Q0],
                               case C of
                                   [] -> {I, Acc};
                                   _ -> {{Op, {M, P, Q}}, Acc ++ C}
                               end;
                          (I, Acc) -> {I, Acc}
                       end, [], Script),
    {Out, Changes}.

%% @doc One purge setting changed by the choices, as wire JSON.
-spec change_json(Change) -> map() when Change :: change().
change_json(#{module := M, field := F, from := From, to := To}) ->
    #{module => atom_to_binary(M, utf8), field => F,
      from => beamdeck_agent_relup_read:purge_json(From), to => beamdeck_agent_relup_read:purge_json(To)}.

%% @doc The purge settings that differ between two versions of a script
%% (the original and the one installed).
-spec diff(Original, Installed) -> [change()] when Original :: list(), Installed :: list().
diff(Original, Installed) ->
    Before = maps:from_list([{{Op, M}, {P, Q}} || {Op, {M, P, Q}} <- Original,
                                                  Op =:= load orelse Op =:= remove]),
    lists:append([[#{module => M, field => prePurge, from => P0, to => P} || P =/= P0]
                  ++ [#{module => M, field => postPurge, from => Q0, to => Q} || Q =/= Q0]
                  || {Op, {M, P, Q}} <- Installed, Op =:= load orelse Op =:= remove,
                     {P0, Q0} <- [maps:get({Op, M}, Before, {P, Q})]]).

%% @doc Every module the script loads or removes, in script order, with
%% what happens around it: suspended (an `update'), `code_change' (only
%% `{advanced, Extra}' adds one), purged during install by a `purge'
%% instruction (`delete_module', `remove_application').
-spec modules(Script) -> [modinfo()] when Script :: list().
modules(Script) ->
    Apps = maps:from_list([{M, App} || {load_object_code, {App, _, Ms}} <- Script, M <- Ms]),
    Suspended = lists:append([[mod_of(S) || S <- Ss] || {suspend, Ss} <- Script, is_list(Ss)]),
    CodeChange = maps:from_list(lists:append([code_changes(I) || I <- Script])),
    Purged = lists:append([Ms || {purge, Ms} <- Script, is_list(Ms)]),
    [#{module => M, op => Op, app => maps:get(M, Apps, null), pre => P, post => Q,
       suspend => lists:member(M, Suspended),
       code_change => maps:get(M, CodeChange, none),
       purged_at_install => lists:member(M, Purged)}
     || {Op, {M, P, Q}} <- Script, Op =:= load orelse Op =:= remove, is_atom(M)].

code_changes({code_change, Ms}) -> code_changes({code_change, up, Ms});
code_changes({code_change, Mode, Ms}) when is_list(Ms) -> [{M, {Mode, E}} || {M, E} <- Ms];
code_changes(_) -> [].

mod_of({M, _}) -> M;
mod_of(M) -> M.

%% @doc Whether the script restarts the emulator (the node reboots).
-spec restarts(Script) -> none | restart_new_emulator | restart_emulator when Script :: list().
restarts(Script) ->
    case {lists:member(restart_new_emulator, Script), lists:member(restart_emulator, Script)} of
        {true, _} -> restart_new_emulator;
        {_, true} -> restart_emulator;
        _ -> none
    end.

%% @doc Applications the script stops (`remove_application',
%% `restart_application' become `{apply, {application, stop, [App]}}').
-spec stopped_apps(Script) -> [atom()] when Script :: list().
stopped_apps(Script) ->
    [App || {apply, {application, stop, [App]}} <- Script].

%%% REWRITE %%%

%% @doc Rewrite the `Section' entry keyed `Key' of relup `File' with the
%% choices, starting from the original. Returns the file, the original's
%% path, the changes and the script now on disk for that entry.
-spec rewrite(File, Section, Key, Choices) ->
          {ok, #{file := string(), orig := string(), changes := [change()], script := list()}}
          | {error, atom(), binary()}
    when File :: string(), Section :: up | down, Key :: string(), Choices :: choices().
rewrite(File, Section, Key, Choices) ->
    Orig = orig_file(File),
    case ensure_orig(File, Orig) of
        ok ->
            case beamdeck_agent_relup_read:read_relup(Orig) of
                {ok, {Vsn, Ups, Downs}} ->
                    Entries = case Section of up -> Ups; down -> Downs end,
                    case lists:keyfind(Key, 1, Entries) of
                        {Key, Descr, Script} ->
                            {NewScript, Changes} = apply_choices(Script, Choices),
                            New = lists:keystore(Key, 1, Entries, {Key, Descr, NewScript}),
                            Term = case Section of
                                       up -> {Vsn, New, Downs};
                                       down -> {Vsn, Ups, New}
                                   end,
                            Result = case Changes of
                                         [] -> copy(Orig, File);
                                         _ -> write_term(File, Orig, Term)
                                     end,
                            case Result of
                                ok -> {ok, #{file => File, orig => Orig, changes => Changes,
                                             script => NewScript}};
                                {error, Why} ->
                                    {error, write_failed, beamdeck_agent_terms:fmt("~ts: ~ts", [File, Why])}
                            end;
                        false ->
                            {error, no_relup, beamdeck_agent_terms:fmt("~ts has no entry for ~ts", [Orig, Key])}
                    end;
                {error, _, _} = E -> E
            end;
        {error, Why} ->
            {error, write_failed, beamdeck_agent_terms:fmt("~ts: cannot keep the original: ~ts", [Orig, Why])}
    end.

%% @doc Put the original relup back (no-op when there is no kept original).
-spec restore(File) -> ok | {error, binary()} when File :: string().
restore(File) ->
    Orig = orig_file(File),
    case filelib:is_regular(Orig) of
        true -> copy(Orig, File);
        false -> ok
    end.

%% The kept original is refreshed when the relup on disk is neither our
%% rewrite nor the original (a new relup was unpacked or copied in).
ensure_orig(File, Orig) ->
    case {file:read_file(File), file:read_file(Orig)} of
        {{ok, Cur}, {ok, Cur}} -> ok;
        {{ok, Cur}, {ok, _Old}} ->
            case binary:match(Cur, <<?MARKER>>) of
                nomatch -> atomic_write(Orig, Cur);
                _ -> ok
            end;
        {{ok, Cur}, {error, enoent}} -> atomic_write(Orig, Cur);
        {{error, _}, {ok, _}} -> ok;
        {{error, R}, _} -> {error, reason(R)};
        {_, {error, R}} -> {error, reason(R)}
    end.

write_term(File, Orig, Term) ->
    Text = io_lib:format("%% coding: utf-8~n" ?MARKER " from ~ts by the operator's purge choices;~n"
                         "%% the original is kept there and every rewrite starts from it.~n~tp.~n",
                         [filename:basename(Orig), Term]),
    atomic_write(File, unicode:characters_to_binary(Text)).

copy(From, To) ->
    case file:read_file(From) of
        {ok, Bin} -> atomic_write(To, Bin);
        {error, R} -> {error, reason(R)}
    end.

atomic_write(File, Bin) ->
    case beamdeck_agent_file:atomic_write(File, Bin) of
        ok -> ok;
        {error, R} -> {error, reason(R)}
    end.

reason(R) -> unicode:characters_to_binary(file:format_error(R)).

known_text([]) -> "nothing";
known_text(Known) -> lists:join(", ", [atom_to_binary(M, utf8) || M <- Known]).

text(B) when is_binary(B) -> B;
text(T) -> beamdeck_agent_terms:text(T, 200).

