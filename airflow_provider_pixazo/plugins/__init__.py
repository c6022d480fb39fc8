"""
The Pixazo view in Airflow's UI (Airflow >= 3.1): a tab on Pixazo task instances and a run gallery.

Nothing here is imported by the operators, sensor, trigger or transfer at DAG-parse time. The
plugin itself (:mod:`.plugin`) and its FastAPI app (:mod:`.app`) load only in the api-server;
:mod:`.records` is the light helper tasks call at execute time to record what the view shows.
"""
