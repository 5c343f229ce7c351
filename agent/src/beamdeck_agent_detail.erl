%%% @doc Process detail on request (docs/protocol.md, ProcessDetail).
%%%
%%% Reads a whitelist of `process_info/2' items; `messages' only through
%%% `beamdeck_agent_mailbox' (below 10,000 messages, values as state). The
%%% dictionary is capped (entries and printed size). `stackModules' comes from
%%% the full backtrace text, not the 8-frame stacktrace: every module with a
%%% code address anywhere on the stack (program counter, return addresses,
%%% catch frames) is one a purge would kill the process for.
%%% `sys:get_state/2' runs only when the `get_state' setting is on (state can
%%% hold secrets) and only for proc_lib processes.
%%%
%%% The same setting decides, here and only here (`values_visible/0'), whether
%%% process dictionary values leave the node: off (the default), the detail
%%% lists the dictionary's keys with `value => null' (proc_lib's own
%%% `$initial_call' and `$ancestors' excepted) and crash reports are sent
%%% without dictionary values, messages or arguments
%%% (`beamdeck_agent_logger_h'). What leaves the node is decided on the node.
-module(beamdeck_agent_detail).

-export([fetch/1, values_visible/0, dictionary/2]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([stack_modules/1]).
-endif.

-define(ITEMS, [current_stacktrace, links, monitors, monitored_by, trap_exit,
                priority, heap_size, stack_size, total_heap_size,
                message_queue_len, garbage_collection, dictionary]).
-define(MAX_LIST, 1000).
-define(MAX_DICT, 50).
-define(DICT_KEY_CAP, 256).
-define(DICT_VALUE_CAP, 1024).
-define(STATE_CAP, 32 * 1024).
-define(STATE_TIMEOUT, 1000).
%% Bytes of backtrace text parsed and modules reported.
-define(MAX_BACKTRACE, 4 * 1024 * 1024).
-define(MAX_MODULES, 500).

%% @doc The ProcessDetail of the process printed as `PidText' (`"<0.116.0>"').
-spec fetch(PidText) -> {ok, Detail} | {error, not_found | bad_pid, Message}
    when PidText :: binary(), Detail :: map(), Message :: binary().
fetch(PidText) when is_binary(PidText) ->
    case parse_pid(PidText) of
        {ok, Pid} -> detail(Pid, PidText);
        beyond ->
            %% Well-formed, but no process of this node can have that number.
            {error, not_found, <<"no such process ", PidText/binary>>};
        remote ->
            {error, bad_pid, <<PidText/binary, " is not a pid of this node:"
                               " expected <0.N.M> (a local pid starts with 0)">>};
        malformed ->
            {error, bad_pid, <<"not a pid: \"", (shown(PidText))/binary,
                               "\"; expected a pid like <0.116.0>">>}
    end;
fetch(_) ->
    {error, bad_pid, <<"pid must be a string like <0.116.0>">>}.

parse_pid(Text) when byte_size(Text) > 64 -> malformed;
parse_pid(Text) ->
    case re:run(Text, "^<(\\d+)\\.\\d+\\.\\d+>$", [{capture, [1], binary}]) of
        {match, [<<"0">>]} ->
            try list_to_pid(binary_to_list(Text)) of
                Pid -> {ok, Pid}
            catch
                error:badarg -> beyond
            end;
        {match, [_]} -> remote;
        nomatch -> malformed
    end.

%% Printable text only, and short: the input is echoed in an error.
shown(Text) ->
    Cut = binary:part(Text, 0, min(byte_size(Text), 64)),
    case unicode:characters_to_list(Cut) of
        Chars when is_list(Chars) ->
            case io_lib:printable_unicode_list(Chars) of
                true -> Cut;
                false -> <<"(unprintable)">>
            end;
        _ -> <<"(unprintable)">>
    end.

detail(Pid, PidText) ->
    Gone = {error, not_found, <<"no such process ", PidText/binary>>},
    case {beamdeck_agent_procinfo:record(Pid), erlang:process_info(Pid, ?ITEMS)} of
        {{ok, Record}, Info} when is_list(Info) ->
            {ok, build(Pid, Record, maps:from_list(Info))};
        _ ->
            Gone
    end.

build(Pid, Record, I) ->
    Visible = values_visible(),
    {Dict, DictTruncated} = dictionary(maps:get(dictionary, I), Visible),
    GC = maps:get(garbage_collection, I),
    #{pid => beamdeck_agent_terms:pid(Pid),
      alive => true,
      record => Record,
      stacktrace => [frame(F) || F <- maps:get(current_stacktrace, I)],
      stackModules => case erlang:process_info(Pid, backtrace) of
                          {backtrace, Bt} -> stack_modules(Bt);
                          undefined -> []
                      end,
      links => [beamdeck_agent_terms:pid(L) || L <- lists:sublist(maps:get(links, I), ?MAX_LIST)],
      monitors => [monitor(M) || M <- lists:sublist(maps:get(monitors, I), ?MAX_LIST)],
      monitoredBy => [beamdeck_agent_terms:pid(M)
                      || M <- lists:sublist(maps:get(monitored_by, I), ?MAX_LIST),
                         is_pid(M) orelse is_port(M) orelse is_reference(M)],
      trapExit => maps:get(trap_exit, I),
      priority => beamdeck_agent_terms:atom(maps:get(priority, I)),
      heapSize => beamdeck_agent_terms:int(maps:get(heap_size, I)),
      stackSize => beamdeck_agent_terms:int(maps:get(stack_size, I)),
      totalHeapSize => beamdeck_agent_terms:int(maps:get(total_heap_size, I)),
      messageQueueLen => beamdeck_agent_terms:int(maps:get(message_queue_len, I)),
      mailbox => beamdeck_agent_mailbox:preview(Pid, maps:get(message_queue_len, I), Visible),
      garbageCollection =>
          #{minorGcs => beamdeck_agent_terms:int(proplists:get_value(minor_gcs, GC, 0)),
            fullsweepAfter => beamdeck_agent_terms:int(proplists:get_value(fullsweep_after, GC, 0))},
      dictionary => Dict,
      dictionaryTruncated => DictTruncated,
      dictionaryValues => case Visible of true -> <<"shown">>; false -> <<"hidden">> end,
      state => state(Pid, proplists:is_defined('$initial_call', maps:get(dictionary, I)))}.

frame({M, F, ArityOrArgs, Location}) ->
    #{mfa => beamdeck_agent_terms:mfa({M, F, ArityOrArgs}),
      file => case proplists:get_value(file, Location) of
                  undefined -> null;
                  File -> unicode:characters_to_binary(File)
              end,
      line => case proplists:get_value(line, Location) of
                  Line when is_integer(Line) -> Line;
                  _ -> null
              end}.

monitor({Kind, Pid}) when is_pid(Pid); is_port(Pid) ->
    #{kind => beamdeck_agent_terms:atom(Kind), pid => beamdeck_agent_terms:pid(Pid)};
monitor({Kind, {Name, Node}}) ->
    #{kind => beamdeck_agent_terms:atom(Kind), name => beamdeck_agent_terms:id_text(Name),
      node => beamdeck_agent_terms:id_text(Node)};
monitor({Kind, Other}) ->
    #{kind => beamdeck_agent_terms:id_text(Kind), name => beamdeck_agent_terms:id_text(Other)}.

%% @doc Dictionary entries sorted by key and capped; values only when
%% `Visible' (proc_lib's own bookkeeping keys always show theirs).
-spec dictionary(Dict, Visible) -> {[Entry], Truncated}
    when Dict :: [{term(), term()}], Visible :: boolean(),
         Entry :: #{key := binary(), value := binary() | null}, Truncated :: boolean().
dictionary(Dict, Visible) ->
    %% By key only: values can be large, and keys are unique.
    Sorted = lists:keysort(1, Dict),
    Entries = [#{key => cap_text(K, ?DICT_KEY_CAP), value => value_text(K, V, Visible)}
               || {K, V} <- lists:sublist(Sorted, ?MAX_DICT)],
    {Entries, length(Dict) > ?MAX_DICT}.

value_text(K, V, Visible) when Visible; K =:= '$initial_call'; K =:= '$ancestors' ->
    cap_text(V, ?DICT_VALUE_CAP);
value_text(_K, _V, false) ->
    null.

cap_text(Term, Cap) -> maps:get(text, beamdeck_agent_terms:printed(Term, Cap)).

%% `sys:get_state/2' only when enabled, only for proc_lib processes.
state(Pid, IsOtp) ->
    case {get_state_enabled(), IsOtp} of
        {false, _} -> #{error => <<"disabled">>};
        {true, false} -> #{error => <<"not_otp">>};
        {true, true} when Pid =:= self() -> #{error => <<"timeout">>};
        {true, true} ->
            try sys:get_state(Pid, ?STATE_TIMEOUT) of
                State -> beamdeck_agent_terms:printed(State, ?STATE_CAP)
            catch
                exit:{timeout, _} -> #{error => <<"timeout">>};
                %% Died, or not answering system messages the OTP way.
                exit:Reason -> #{error => <<"not_otp">>,
                                 reason => beamdeck_agent_terms:printed(Reason, 512)};
                error:Reason -> #{error => <<"not_otp">>,
                                  reason => beamdeck_agent_terms:printed(Reason, 512)}
            end
    end.

get_state_enabled() ->
    values_visible().

%% @doc Whether state, dictionary values and crash-report details may leave
%% the node: the `get_state' setting (off by default; they can hold secrets).
-spec values_visible() -> boolean().
values_visible() ->
    beamdeck_agent_config:get(get_state) =:= true.

%% @doc Module names with a code address on the stack, in stack order, parsed
%% from the text of `process_info(P, backtrace)': lines such as
%% `Return addr 0x... (Elixir.TestListener:loop/1 + 120)' or, as OTP 25
%% prints atoms that need quotes, `('Elixir.TestListener':loop/1 + 80)'.
-spec stack_modules(Backtrace) -> [binary()] when Backtrace :: binary().
stack_modules(Backtrace) ->
    Text = case byte_size(Backtrace) > ?MAX_BACKTRACE of
               true -> binary:part(Backtrace, 0, ?MAX_BACKTRACE);
               false -> Backtrace
           end,
    RE = "(?:Program counter:|Return addr|Catch) 0x[0-9a-fA-F]+ \\("
         "('(?:[^'\\\\]|\\\\.)*'|[A-Za-z][A-Za-z0-9_@.]*):",
    case re:run(Text, RE, [global, {capture, [1], binary}]) of
        {match, Found} -> unique([module_text(M) || [M] <- Found], #{}, []);
        nomatch -> []
    end.

module_text(<<$', _/binary>> = Quoted) ->
    case erl_scan:string(binary_to_list(Quoted)) of
        {ok, [{atom, _, Atom}], _} -> beamdeck_agent_terms:atom(Atom);
        _ -> binary:part(Quoted, 1, byte_size(Quoted) - 2)
    end;
module_text(Bare) -> Bare.

unique([], _, Acc) -> lists:reverse(Acc);
unique(_, Seen, Acc) when map_size(Seen) >= ?MAX_MODULES -> lists:reverse(Acc);
unique([M | Ms], Seen, Acc) when is_map_key(M, Seen) -> unique(Ms, Seen, Acc);
unique([M | Ms], Seen, Acc) -> unique(Ms, Seen#{M => true}, [M | Acc]).
