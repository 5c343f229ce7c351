%%% @doc Supervision trees of every running application, plus the processes
%%% linked to tree processes that no supervisor owns (docs/protocol.md, TreeNode).
%%%
%%% The seed case: a supervised `Task' acceptor spawns a `Task.async' per
%%% connection. Those children are linked to the acceptor but supervised by
%%% nobody, and a brutal purge kills them with it; they are listed under the
%%% acceptor's `linked'.
%%%
%%% Every call into a supervisor goes through `beamdeck_agent_otp' with a
%%% timeout, so a supervisor suspended by a relup is reported with
%%% `"timeout": true' instead of hanging the sampler. The output is bounded:
%%% children per supervisor, linked processes per node and in total, and an
%%% estimate of the encoded size of the whole frame.
%%%
%%% The upgrade preview walks the same trees for another question: whom
%%% release_handler would suspend for `{update, M}' (supervised/2).
-module(beamdeck_agent_tree).

-export([apps/0, supervised/2]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([apps/1]).
-endif.

-export_type([app/0, tree_node/0]).

-define(CALL_TIMEOUT, 1000).
%% The upgrade preview's walk (supervised/2) lists no children, only counts
%% them: a higher bound than the tree frame's.
-define(MAX_SUP_CHILDREN, 200000).
-define(MAX_CHILDREN, 500).
-define(MAX_LINKED_PER_NODE, 200).
-define(MAX_LINKED_DEPTH, 3).
-define(MAX_LINKED_TOTAL, 2000).
-define(MAX_DEPTH, 32).
%% Estimated JSON bytes for all trees; a frame must stay under 512 KiB. Once
%% spent, each remaining application still gets its entry and a bare root.
-define(MAX_BYTES, 384 * 1024).
%% Fixed JSON overhead of a TreeNode / LinkedProcess (keys, punctuation).
-define(NODE_BYTES, 110).
-define(LINKED_BYTES, 60).
-define(APP_BYTES, 60).

-type tree_node() :: #{atom() => beamdeck_agent_terms:json()}.
-type app() :: #{name := binary(), vsn := binary() | null, master := binary() | null,
                 root := tree_node() | null}.
-type opts() :: #{timeout => pos_integer(), max_bytes => pos_integer(),
                  max_children => pos_integer()}.

%% Budget threaded through the walk.
-record(b, {bytes :: integer(), linked :: integer(), deadline :: integer(),
            timeout :: pos_integer(), max_children :: pos_integer()}).

%% @doc The `apps' of a `tree' frame with default limits.
-spec apps() -> [app()].
apps() -> apps(#{}).

%% @doc The `apps' of a `tree' frame. `Opts': `timeout' per supervisor call
%% (ms, default 1000), `max_bytes' (estimated JSON size of all trees),
%% `max_children' (children listed per supervisor).
-spec apps(Opts) -> [app()] when Opts :: opts().
apps(Opts) ->
    Timeout = maps:get(timeout, Opts, ?CALL_TIMEOUT),
    B0 = #b{bytes = maps:get(max_bytes, Opts, ?MAX_BYTES), linked = ?MAX_LINKED_TOTAL,
            %% The walk asks no more supervisors once three stuck ones (a
            %% relup suspends several) could have used up the time.
            deadline = beamdeck_agent_terms:monotonic_ms() + 3 * Timeout, timeout = Timeout,
            max_children = maps:get(max_children, Opts, ?MAX_CHILDREN)},
    Running = try application:which_applications(Timeout)
              catch exit:_ -> []
              end,
    {Apps, _} = lists:mapfoldl(fun app/2, B0, lists:keysort(1, Running)),
    Apps.

app({Name, _Desc, Vsn}, B) ->
    Master = case beamdeck_agent_otp:call(fun() -> application_controller:get_master(Name) end,
                                          B#b.timeout) of
                 {ok, M} when is_pid(M) -> M;
                 _ -> undefined
             end,
    {Root, B1} = case Master of
                     undefined -> {null, B};
                     _ -> root(Name, Master, B)
                 end,
    App = #{name => beamdeck_agent_terms:atom(Name),
            vsn => vsn(Vsn),
            master => beamdeck_agent_terms:maybe_pid(Master),
            root => Root},
    {App, B1#b{bytes = B1#b.bytes - ?APP_BYTES - text_bytes(maps:without([root], App))}}.

root(Name, Master, B) ->
    case beamdeck_agent_otp:app_supervisor(Name, B#b.timeout) of
        {ok, Sup} ->
            Modules = case beamdeck_agent_procinfo:initial_call(Sup) of
                          {supervisor, Mod, _} -> [Mod];
                          _ -> []
                      end,
            RegName = reg_name(Sup),
            Id = case RegName of
                     undefined -> beamdeck_agent_terms:pid(Sup);
                     _ -> beamdeck_agent_terms:atom(RegName)
                 end,
            %% Supervision first, so that `linked' can leave out every
            %% process that some supervisor owns.
            {Tree, B1} = sup_node(Sup, Id, Modules, 0, B),
            Owned = owned(Tree, #{Master => true}),
            link_pass(Tree, Master, Owned, B1);
        _ ->
            {null, B}
    end.

%%% SUPERVISION %%%

sup_node(Pid, Id, Modules, Depth, B) ->
    Node0 = node_map(Pid, Id, supervisor, Modules),
    B0 = spend(Node0, B),
    case Depth >= ?MAX_DEPTH orelse beamdeck_agent_terms:monotonic_ms() > B0#b.deadline orelse B0#b.bytes =< 0 of
        true ->
            {Node0#{truncated => true}, B0};
        false ->
            case beamdeck_agent_otp:which_children(Pid, B0#b.timeout) of
                {ok, Children} when is_list(Children) ->
                    {Kids, Truncated, B1} = children(Children, Depth, B0),
                    {Node0#{children => Kids, truncated => Truncated,
                            all_children => child_pids(Children)}, B1};
                {error, timeout} ->
                    {Node0#{timeout => true}, B0};
                _ ->
                    {Node0, B0}
            end
    end.

children(Children, Depth, B) ->
    Max = B#b.max_children,
    Listed = lists:sublist(Children, Max),
    {Kids, B1} = lists:foldl(fun(Child, {Acc, Bx}) when Bx#b.bytes > 0 ->
                                     {Kid, By} = child(Child, Depth, Bx),
                                     {[Kid | Acc], By};
                                (_, AccB) -> AccB
                             end, {[], B}, Listed),
    Truncated = length(Children) > length(Kids),
    {lists:reverse(Kids), Truncated, B1}.

child({Id, Child, Type, Modules}, Depth, B) ->
    IdText = beamdeck_agent_terms:id_text(Id),
    Pid = case Child of
              P when is_pid(P) -> P;
              _ -> undefined
          end,
    case {Type, Pid} of
        {supervisor, P1} when is_pid(P1) -> sup_node(P1, IdText, Modules, Depth + 1, B);
        _ ->
            Node = node_map(Pid, IdText, kind(Type), Modules),
            {Node, spend(Node, B)}
    end.

node_map(Pid, IdText, Kind, Modules) ->
    #{pid => beamdeck_agent_terms:maybe_pid(Pid),
      id => IdText,
      name => case Pid of
                  undefined -> null;
                  _ -> beamdeck_agent_terms:maybe_atom(reg_name(Pid))
              end,
      kind => Kind,
      modules => modules(Modules),
      children => [],
      linked => [],
      truncated => false,
      %% Internal: the raw pid and every supervised child, removed by link_pass.
      raw_pid => Pid,
      all_children => []}.

kind(supervisor) -> supervisor;
kind(_) -> worker.

modules(dynamic) -> dynamic;
modules(Mods) when is_list(Mods) -> [beamdeck_agent_terms:id_text(M) || M <- lists:sublist(Mods, 64)];
modules(_) -> [].

child_pids(Children) -> [P || {_, P, _, _} <- Children, is_pid(P)].

%% Every pid a supervisor owns, listed or not.
owned(#{raw_pid := Pid, all_children := All, children := Kids}, Acc) ->
    Acc1 = lists:foldl(fun(P, A) -> A#{P => true} end, Acc, All),
    Acc2 = case Pid of
               undefined -> Acc1;
               _ -> Acc1#{Pid => true}
           end,
    lists:foldl(fun owned/2, Acc2, Kids).

%%% LINKED PROCESSES %%%

%% Fill `linked' of every node and drop the internal keys.
link_pass(#{raw_pid := Pid, children := Kids} = Node, Parent, Owned, B) ->
    {Kids1, B1} = lists:mapfoldl(fun(Kid, Bx) -> link_pass(Kid, Pid, Owned, Bx) end,
                                 B, Kids),
    {Linked, Capped, B2} = case Pid of
                               undefined -> {[], false, B1};
                               _ -> linked(Pid, [Parent], Owned, 1, B1)
                           end,
    Node1 = maps:without([raw_pid, all_children], Node),
    Truncated = maps:get(truncated, Node) orelse Capped,
    {Node1#{children => Kids1, linked => Linked, truncated => Truncated}, B2}.

%% Processes linked to `Pid', minus `Exclude' and owned ones; recursive.
%% Returns the entries, whether the per-node cap cut them, and the budget.
linked(_Pid, _Exclude, _Seen, Depth, B) when Depth > ?MAX_LINKED_DEPTH -> {[], false, B};
linked(Pid, _Exclude, _Seen, _Depth, B) when node(Pid) =/= node() -> {[], false, B};
linked(Pid, Exclude, Seen, Depth, B) ->
    Links = case erlang:process_info(Pid, links) of
                {links, L} -> L;
                undefined -> []
            end,
    Parent = case erlang:process_info(Pid, parent) of
                 {parent, Pa} when is_pid(Pa) -> [Pa];
                 _ -> []
             end,
    Skip = Exclude ++ Parent,
    %% Local processes only: a remote one cannot be read from here.
    Candidates = lists:usort([P || P <- Links, is_pid(P), node(P) =:= node(),
                                   not is_map_key(P, Seen), not lists:member(P, Skip)]),
    Listed = lists:sublist(Candidates, ?MAX_LINKED_PER_NODE),
    %% Mark them all seen first so that siblings do not list each other.
    Seen1 = lists:foldl(fun(P, A) -> A#{P => true} end, Seen, Listed),
    {Entries, Out, B1} = lists:foldl(
                           fun(P, {Acc, Out0, Bx}) when Bx#b.linked > 0, Bx#b.bytes > 0 ->
                                   case linked_entry(P, Pid, Seen1, Depth, Bx) of
                                       {ok, E, By} -> {[E | Acc], Out0, By};
                                       gone -> {Acc, Out0, Bx}
                                   end;
                              (_, {Acc, _, Bx}) -> {Acc, true, Bx}
                           end, {[], false, B}, Listed),
    Capped = Out orelse length(Candidates) > length(Listed),
    {lists:reverse(Entries), Capped, B1}.

linked_entry(P, From, Seen, Depth, B) ->
    %% The list form, because the single item gives `[]' for no name.
    case erlang:process_info(P, [registered_name]) of
        undefined -> gone;
        [{registered_name, Reg}] ->
            Entry0 = #{pid => beamdeck_agent_terms:pid(P),
                       name => beamdeck_agent_terms:maybe_atom(Reg),
                       initialCall => beamdeck_agent_terms:maybe_mfa(
                                        beamdeck_agent_procinfo:initial_call(P))},
            B0 = B#b{linked = B#b.linked - 1,
                     bytes = B#b.bytes - ?LINKED_BYTES - text_bytes(Entry0)},
            {Sub, _Capped, B1} = linked(P, [From], Seen, Depth + 1, B0),
            {ok, Entry0#{linked => Sub}, B1}
    end.

%%% SUPERVISED PROCESSES (who release_handler would suspend) %%%

%% @doc For each module in `Mods', the processes release_handler would
%% suspend for `{update, M}': children in the applications' supervision
%% trees whose child spec lists M (`dynamic' modules asked with
%% `get_modules'), and top supervisors whose callback module is M. Every
%% call is bounded; the walk stops at `BudgetMs'.
-spec supervised(Mods, BudgetMs) -> #{module() => [pid()]}
    when Mods :: [module()], BudgetMs :: pos_integer().
supervised(Mods, BudgetMs) ->
    Deadline = erlang:monotonic_time(millisecond) + BudgetMs,
    Apps = try application:which_applications(?CALL_TIMEOUT) catch _:_ -> [] end,
    Found = lists:foldl(
              fun({App, _, _}, Acc) ->
                      case before(Deadline) andalso beamdeck_agent_otp:app_supervisor(App, ?CALL_TIMEOUT) of
                          {ok, Root} ->
                              RootMod = case beamdeck_agent_otp:call(
                                               fun() -> supervisor:get_callback_module(Root) end,
                                               ?CALL_TIMEOUT) of
                                            {ok, RM} when is_atom(RM) -> [RM];
                                            _ -> []
                                        end,
                              walk(Root, Mods, 0, Deadline, add(Root, RootMod, Mods, Acc));
                          _ -> Acc
                      end
              end, #{}, Apps),
    maps:map(fun(_, Ps) -> lists:usort(Ps) end, Found).

walk(_Sup, _Mods, Depth, _Deadline, Acc) when Depth > 30 -> Acc;
walk(Sup, Mods, Depth, Deadline, Acc) ->
    case before(Deadline) andalso beamdeck_agent_otp:which_children(Sup, ?CALL_TIMEOUT) of
        {ok, Children} when is_list(Children) ->
            lists:foldl(
              fun({_Id, Pid, Type, Mods0}, A) when is_pid(Pid) ->
                      ChildMods = case Mods0 of
                                      dynamic when Type =:= worker -> dynamic_mods(Pid);
                                      L when is_list(L) -> L;
                                      _ -> []
                                  end,
                      A1 = add(Pid, ChildMods, Mods, A),
                      case Type of
                          supervisor -> walk(Pid, Mods, Depth + 1, Deadline, A1);
                          _ -> A1
                      end;
                 (_, A) -> A
              end, Acc, lists:sublist(Children, ?MAX_SUP_CHILDREN));
        _ -> Acc
    end.

add(Pid, ChildMods, Mods, Acc) ->
    lists:foldl(fun(M, A) ->
                        case lists:member(M, ChildMods) of
                            true -> maps:update_with(M, fun(L) -> [Pid | L] end, [Pid], A);
                            false -> A
                        end
                end, Acc, Mods).

dynamic_mods(Pid) ->
    case beamdeck_agent_otp:call(fun() -> gen:call(Pid, self(), get_modules, ?CALL_TIMEOUT) end,
                                 ?CALL_TIMEOUT + 100) of
        {ok, {ok, Mods}} when is_list(Mods) -> Mods;
        _ -> []
    end.

before(Deadline) -> erlang:monotonic_time(millisecond) < Deadline.

%%% HELPERS %%%

spend(Node, B) -> B#b{bytes = B#b.bytes - ?NODE_BYTES - text_bytes(Node)}.

text_bytes(Map) ->
    maps:fold(fun(_, V, Acc) when is_binary(V) -> Acc + byte_size(V);
                 (_, V, Acc) when is_list(V) ->
                      Acc + lists:sum([byte_size(X) + 3 || X <- V, is_binary(X)]);
                 (_, _, Acc) -> Acc
              end, 0, Map).

reg_name(Pid) when node(Pid) =/= node() -> undefined;
reg_name(Pid) ->
    case erlang:process_info(Pid, registered_name) of
        {registered_name, Name} when is_atom(Name), Name =/= [] -> Name;
        _ -> undefined
    end.

vsn(V) when is_list(V) ->
    case unicode:characters_to_binary(V) of
        B when is_binary(B) -> B;
        _ -> null
    end;
vsn(V) when is_binary(V) -> V;
vsn(_) -> null.

