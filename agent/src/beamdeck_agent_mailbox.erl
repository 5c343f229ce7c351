%%% @doc Mailbox preview and leak hints for the process detail
%%% (docs/protocol.md, ProcessDetail `mailbox').
%%%
%%% `process_info(P, messages)' copies the whole queue onto our heap, so it
%%% runs only below ?PREVIEW_GUARD messages (observer_cli's guard), once per
%%% detail request. What leaves the node:
%%% <ul>
%%% <li>the first ?PREVIEW_COUNT messages, each printed and capped, only when
%%%     `beamdeck_agent_detail:values_visible/0' allows (messages hold the
%%%     same data as state);</li>
%%% <li>hints for known leak patterns, always: they carry counts and shapes,
%%%     never values.</li>
%%% </ul>
-module(beamdeck_agent_mailbox).

-export([preview/3, hints/1]).

-define(PREVIEW_GUARD, 10000).
-define(PREVIEW_COUNT, 10).
-define(MESSAGE_CAP, 512).

%% @doc The preview of `Pid''s mailbox, whose length was just read as `Len'.
-spec preview(Pid, Len, Visible) -> Preview
    when Pid :: pid(), Len :: non_neg_integer(), Visible :: boolean(),
         Preview :: #{status := binary(), messages := [map()], hints := [map()],
                      limit := pos_integer()}.
preview(_Pid, 0, _Visible) ->
    result(<<"empty">>, [], []);
preview(_Pid, Len, _Visible) when Len >= ?PREVIEW_GUARD ->
    result(<<"too_many">>, [], []);
preview(Pid, _Len, Visible) ->
    case erlang:process_info(Pid, messages) of
        {messages, Ms} when length(Ms) < ?PREVIEW_GUARD ->
            Hints = hints(Ms),
            case Visible of
                true ->
                    Shown = [beamdeck_agent_terms:printed(M, ?MESSAGE_CAP)
                             || M <- lists:sublist(Ms, ?PREVIEW_COUNT)],
                    result(<<"shown">>, Shown, Hints);
                false ->
                    result(<<"hidden">>, [], Hints)
            end;
        {messages, _} -> result(<<"too_many">>, [], []);
        undefined -> result(<<"gone">>, [], [])
    end.

result(Status, Messages, Hints) ->
    #{status => Status, messages => Messages, hints => Hints, limit => ?PREVIEW_GUARD}.

%% @doc Hints for known leak patterns in a list of messages:
%% `task_async_unawaited' (`{Ref, Result}' and `{'DOWN', Ref, ...}' for the
%% same reference: Elixir's `Task.async' never awaited), `late_replies'
%% (`{Ref, Result}' alone: replies that arrived after their caller gave up)
%% and `unhandled_down' (`DOWN' messages of monitors nobody handles).
-spec hints(Messages) -> [Hint]
    when Messages :: [term()],
         Hint :: #{id := binary(), count := non_neg_integer(), message := binary(),
                   fix := binary()}.
hints(Messages) ->
    {Replies, Downs} = lists:foldl(fun classify/2, {#{}, #{}}, Messages),
    Paired = maps:size(maps:with(maps:keys(Replies), Downs)),
    Lonely = maps:size(Replies) - Paired,
    LonelyDowns = maps:size(Downs) - Paired,
    [H || {N, H} <- [{Paired, task_hint(Paired)},
                     {Lonely, late_hint(Lonely)},
                     {LonelyDowns, down_hint(LonelyDowns)}],
          N > 0].

classify({Ref, _Result}, {Replies, Downs}) when is_reference(Ref) ->
    {Replies#{Ref => true}, Downs};
classify({'DOWN', Ref, _Type, _Obj, _Info}, {Replies, Downs}) when is_reference(Ref) ->
    {Replies, Downs#{Ref => true}};
classify(_, Acc) ->
    Acc.

task_hint(N) ->
    hint(<<"task_async_unawaited">>, N,
         [int(N), <<" task result(s) {Ref, Result} with a matching {'DOWN', Ref, process, _, _}:"
                    " Task.async started and never awaited">>],
         <<"await the task (Task.await/Task.yield), or start it with"
           " Task.Supervisor.async_nolink and handle both messages in handle_info">>).

late_hint(N) ->
    hint(<<"late_replies">>, N,
         [int(N), <<" reply message(s) {Ref, Result} nobody receives:"
                    " replies that arrived after their caller stopped waiting">>],
         <<"receive or flush {Ref, _} after a call that may time out (or let a"
           " gen_server handle_info drop them)">>).

down_hint(N) ->
    hint(<<"unhandled_down">>, N,
         [int(N), <<" {'DOWN', Ref, ...} message(s) of monitors nobody handles">>],
         <<"handle 'DOWN' in the receive loop or handle_info, or demonitor with [flush]">>).

hint(Id, N, Message, Fix) ->
    #{id => Id, count => N, message => iolist_to_binary(Message), fix => Fix}.

int(N) -> integer_to_binary(N).
