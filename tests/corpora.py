"""Small corpora the tests build themselves: templated requests over known intents."""

from __future__ import annotations

import random

INTENT_TEMPLATES: dict[str, list[str]] = {
    "weather": ["what's the weather in {city} tomorrow", "will it rain in {city} today",
                "how hot will it be in {city} this weekend", "is it going to snow in {city}"],
    "alarm": ["set an alarm for {time}", "wake me up at {time}", "please set my alarm to {time}",
              "can you add an alarm at {time}"],
    "transfer": ["transfer {amount} dollars to my savings account", "move {amount} from checking to savings",
                 "send {amount} dollars to my brother's bank account", "wire {amount} to my landlord"],
    "recipe": ["how do i cook {food}", "give me a recipe for {food}", "what ingredients do i need for {food}",
               "teach me to make {food}"],
    "music": ["play some {genre} music", "put on a {genre} playlist", "i want to listen to {genre}",
              "start playing {genre} songs"],
    "translate": ["how do you say hello in {language}", "translate thank you into {language}",
                  "what is the {language} word for cat", "say good night in {language}"],
    "flight": ["book a flight to {city} next friday", "find me cheap flights to {city}",
               "i need a plane ticket to {city}", "is there a direct flight to {city}"],
    "calories": ["how many calories are in {food}", "is {food} healthy", "nutrition facts for {food}",
                 "how much protein does {food} have"],
    "joke": ["tell me a joke about {animal}", "do you know any funny {animal} jokes",
             "make me laugh with a {animal} joke", "i want to hear a joke about {animal}"],
    "timer": ["set a timer for {minutes} minutes", "start a {minutes} minute countdown",
              "remind me in {minutes} minutes", "count down {minutes} minutes for my tea"],
    "balance": ["what is my checking account balance", "how much money do i have in savings",
                "show me my bank balance", "check the balance on my credit card"],
    "directions": ["how do i get to {city} by car", "give me directions to the {city} airport",
                   "what's the fastest route to {city}", "navigate me to downtown {city}"],
}
FILLERS = {
    "city": ["paris", "tokyo", "boston", "cairo", "lima", "oslo", "delhi", "sydney"],
    "time": ["6am", "7:30", "noon", "5 pm", "midnight", "8 in the morning"],
    "amount": ["200", "50", "1,000", "75", "300"],
    "food": ["lasagna", "pad thai", "a banana", "pancakes", "sushi", "tacos", "risotto"],
    "genre": ["jazz", "rock", "classical", "hip hop", "country", "reggae"],
    "language": ["french", "spanish", "japanese", "german", "italian"],
    "animal": ["cats", "dogs", "penguins", "cows", "ducks"],
    "minutes": ["5", "10", "15", "20", "45"],
}


def intent_corpus(intents: list[str], n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n (text, intent) pairs spread evenly over `intents`, each text from a random template."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        intent = intents[i % len(intents)]
        template = rng.choice(INTENT_TEMPLATES[intent])
        text = template.format(**{k: rng.choice(v) for k, v in FILLERS.items()})
        rows.append((text, intent))
    return rows
