%%% @doc The connection's outbound queue rule, as a pure function: bounded,
%%% the oldest item dropped on overflow (and counted by the caller).
%%% beamdeck_agent_conn holds the queue and sends from it.
-module(beamdeck_agent_outbox).

-export([enqueue/3]).

%% @doc Add an item to a bounded queue; on overflow the oldest is dropped.
%% Returns the queue, its length and how many items were dropped (0 or 1).
-spec enqueue(Item, {Queue, Len}, Max) -> {Queue, Len, Dropped}
    when Item :: term(), Queue :: queue:queue(), Len :: non_neg_integer(),
         Max :: pos_integer(), Dropped :: 0 | 1.
enqueue(Item, {Q, Len}, Max) when Len >= Max ->
    {_, Q1} = queue:out(Q),
    {queue:in(Item, Q1), Len, 1};
enqueue(Item, {Q, Len}, _Max) ->
    {queue:in(Item, Q), Len + 1, 0}.
